"""Helpers for the hostile-input suite: run a command and measure it (wall time and the peak
memory of its own process), look for a secret everywhere it could leak, a fleet whose
``probe`` pack renders a template of the test's choosing, and ``edgefleet serve`` over it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.fleet import FleetFiles
from tests.support.git import git
from tests.support.keys import signing_key
from tests.support.operators import VIEWER, write_token_file
from tests.support.serving import serve_flags

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "enr-7f3c9d1e-hostile-secret-5a2b"  # the value of a sensitive variable
BOOTSTRAP = "bootstrap-token-for-hostile-tests-0123456789"
PROBE = "packs/probe/1.0.0/manifests/probe.yaml.j2"


@dataclass(frozen=True)
class Measured:
    code: int
    out: str
    err: str
    seconds: float
    peak_mib: float  # the process's own peak resident memory


def run_measured(
    argv: list[str], *, work: Path, timeout: float = 60, env: dict[str, str] | None = None
) -> Measured:
    """Run ``argv`` (a ``python -m`` command, see :func:`edgefleet`) to its end, killed after
    ``timeout`` seconds; its peak memory is the process's own, written by
    :mod:`tests.support.peak` as it exits."""
    stamp = time.monotonic_ns()
    out_path, err_path, peak = work / f"out-{stamp}", work / f"err-{stamp}", work / f"peak-{stamp}"
    assert argv[:2] == [sys.executable, "-m"], argv
    command = [sys.executable, "-m", "tests.support.peak", str(peak), *argv[2:]]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.monotonic()
        done = subprocess.run(
            command,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
            timeout=timeout,
            check=False,
        )
        seconds = time.monotonic() - started
    return Measured(
        done.returncode,
        out_path.read_text(errors="replace"),
        err_path.read_text(errors="replace"),
        seconds,
        int(peak.read_text()) / 1024 if peak.exists() else 0.0,
    )


def edgefleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args]


def files_holding(secret: str, *folders: Path) -> list[Path]:
    """Every file under ``folders`` whose bytes contain ``secret``."""
    found = []
    needle = secret.encode()
    for folder in folders:
        for path in folder.rglob("*") if folder.is_dir() else []:
            if path.is_file() and needle in path.read_bytes():
                found.append(path)
    return found


def assert_not_leaked(secret: str, *texts: str, folders: Iterable[Path] = ()) -> None:
    for text in texts:
        assert secret not in text, f"the secret is in: {text[:2000]}"
    assert files_holding(secret, *folders) == []


def probe_pack(fleet: FleetFiles, template: str, *, values: str = "greeting: hello\n") -> None:
    """A repository pack ``probe`` whose one manifest is ``template``, used by the store
    profile (every store site renders it)."""
    fleet.write("packs/probe/1.0.0/pack.yaml", "name: probe\nversion: 1.0.0\nlayer: addon\n")
    fleet.write("packs/probe/1.0.0/values.yaml", values)
    (fleet.root / PROBE).parent.mkdir(parents=True, exist_ok=True)
    (fleet.root / PROBE).write_text(template)
    if "pack: probe" not in fleet.read("profiles/store-1.0.0.yaml"):
        fleet.edit(
            "profiles/store-1.0.0.yaml",
            "    - layer: addon\n      name: store-config\n",
            "    - layer: addon\n      pack: probe\n      version: 1.0.0\n"
            "    - layer: addon\n      name: store-config\n",
        )


def sensitive_variable(fleet: FleetFiles, value: str = SECRET) -> None:
    """The store profile declares a sensitive ``enrolToken`` (``enr-`` and 8 to 64 of [0-9a-z-])
    that both store clusters set to ``value``."""
    fleet.edit(
        "profiles/store-1.0.0.yaml",
        "    - name: replicas\n",
        '    - name: enrolToken\n      format: string\n      regex: "enr-[0-9a-z-]{8,64}"\n'
        "      sensitive: true\n    - name: replicas\n",
    )
    for site in ("store-1", "restaurant-7"):
        rel = f"sites/{site}/clusters/pos.yaml"
        line = fleet.read(rel).splitlines()[fleet.line_of(rel, "storeId:") - 1]
        indent = line[: len(line) - len(line.lstrip())]
        fleet.edit(rel, line, f'{indent}enrolToken: "{value}"\n{line}')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_mib(pid: int) -> float:
    """A running process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


class Served:
    """``edgefleet serve`` over a git repository of ``fleet``, on a free port."""

    def __init__(self, fleet: FleetFiles, work: Path, port: int) -> None:
        self.fleet = fleet
        self.work = work
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        (work / "bootstrap").write_text(BOOTSTRAP)
        write_token_file(work / "operators")
        signing_key(work)

    def start(self, *extra: str, env: dict[str, str] | None = None) -> None:
        with (self.work / "serve.log").open("ab") as log:
            self.process = subprocess.Popen(
                [*edgefleet("serve", str(self.fleet.root)), *self.args(), *extra],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.status().get("revision"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError("serve did not publish a revision:\n" + self.log())

    def args(self) -> list[str]:
        return serve_flags(self.work, self.port)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def status(self) -> dict[str, object]:
        found: dict[str, object] = httpx.get(
            f"{self.url}/v1/fleet", timeout=5, headers=VIEWER
        ).json()
        return found

    def site(self, name: str) -> dict[str, object]:
        found: dict[str, object] = httpx.get(
            f"{self.url}/v1/sites/{name}", timeout=5, headers=VIEWER
        ).json()
        return found

    def commit(self, message: str) -> str:
        git(self.fleet.root, "add", "-A")
        git(self.fleet.root, "commit", "-qm", message)
        return git(self.fleet.root, "rev-parse", "HEAD")

    def outcome(self, sha: str, timeout: float = 60) -> tuple[str, list[str]]:
        """``("failed", errors)`` or ``("good", [])`` once ``sha`` is recorded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            failure = status.get("lastFailure")
            if isinstance(failure, dict) and failure.get("sha") == sha:
                return "failed", [str(e) for e in failure["errors"]]
            revision = status.get("revision")
            if isinstance(revision, dict) and revision.get("sha") == sha:
                return "good", []
            time.sleep(0.1)
        raise AssertionError(f"{sha[:7]} was not recorded:\n{self.log()}")

    def log(self) -> str:
        return (self.work / "serve.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def init_repository(fleet: FleetFiles) -> None:
    git(fleet.root, "init", "-q", "-b", "main")
    git(fleet.root, "add", "-A")
    git(fleet.root, "commit", "-qm", "the fleet")
