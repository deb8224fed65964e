"""Building the project's wheel and installing it into a virtual environment of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class InstallFailed(Exception):
    """pip could not build or install (the message ends with pip's own last lines)."""


def _pip(python: Path | str, *args: str, cwd: Path) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd, capture_output=True, text=True, timeout=900,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if done.returncode != 0:
        raise InstallFailed(f"pip {args[0]}: {(done.stdout + done.stderr)[-1500:]}")
    return time.monotonic() - started


def build_wheel(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _pip(sys.executable, "wheel", "--no-deps", "-q", "-w", str(folder), str(ROOT), cwd=folder)
    wheels = sorted(folder.glob("edgefleet-*.whl"))
    if len(wheels) != 1:
        raise InstallFailed(f"expected one wheel in {folder}, found {wheels}")
    return wheels[0]


@dataclass
class Installation:
    venv: Path
    wheel: Path
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def create(cls, folder: Path, wheel: Path) -> Installation:
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        found = cls(folder, wheel)
        found.seconds["base"] = _pip(found.python, "install", "-q", str(wheel), cwd=folder)
        return found

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def add_extras(self, extras: str) -> None:
        if extras not in self.seconds:
            self.seconds[extras] = _pip(
                self.python, "install", "-q", f"{self.wheel}[{extras}]", cwd=self.venv
            )

    def run(self, command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        """One of the installed commands, with nothing of the checkout on its path."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.bin}:/usr/bin:/bin"
        return subprocess.run(
            [str(self.bin / command), *args],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
