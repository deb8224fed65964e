"""The agent's systemd service: enabled and started where systemd runs the root being
installed, otherwise the exact command that would do it, printed. Called by
:func:`agent.installer.main`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from agent.errors import AgentError
from agent.installer.files import UNIT_NAME

ENABLE = ("systemctl", "enable", "--now", UNIT_NAME)
DISABLE = ("systemctl", "disable", "--now", UNIT_NAME)


class ServiceFailed(AgentError):
    pass


def systemd_runs(target: Path, *, run_dir: Path = Path("/run/systemd/system")) -> bool:
    """Whether systemd manages the root being installed: it is this machine's, and systemd
    is its init (sd_booted(3): /run/systemd/system exists)."""
    return target.resolve() == Path("/") and run_dir.is_dir()


def command(words: tuple[str, ...]) -> str:
    return " ".join(words)


def systemctl(*words: str) -> None:
    try:
        done = subprocess.run(
            ["systemctl", *words], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ServiceFailed(f"systemctl {' '.join(words)}: {e}") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        why = lines[-1] if lines else f"exit {done.returncode}"
        raise ServiceFailed(f"systemctl {' '.join(words)} failed: {why}")


def enable() -> None:
    systemctl("daemon-reload")
    try:
        systemctl(*ENABLE[1:])
    except ServiceFailed as e:
        raise ServiceFailed(f"{e} ({_outcome()})") from None


def _outcome() -> str:
    """How the service's start ended, as systemd recorded it (203: the program would not run)."""
    try:
        done = subprocess.run(
            ["systemctl", "show", "-p", "Result", "-p", "ExecMainStatus", UNIT_NAME],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "its outcome unknown"
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return (
        f"result {found.get('Result', '?')}, exit status {found.get('ExecMainStatus', '?')}; "
        f"journalctl -u {UNIT_NAME} tells more"
    )


def disable() -> None:
    systemctl(*DISABLE[1:])


def reload() -> None:
    systemctl("daemon-reload")
