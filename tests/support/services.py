"""A service the suite starts itself (Docker, libvirtd, PostgreSQL, tinyproxy) that cannot run
here: the tests that need it skip with the reason, or fail with it when ``CI`` is set, so a CI
run is never green with part of the suite left out."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI is set: a service the suite needs must run)", pytrace=False)
    pytest.skip(reason)


def install_missing_packages(command: str, *, timeout: float) -> None:
    """As root, when ``command`` is not installed, install what debian-packages.txt lists."""
    if os.geteuid() != 0 or shutil.which(command):
        return
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "install-debian-packages")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=timeout,
    )
