"""Integration tier: real dependencies. Here: git repositories made by the tests with the
``git`` command and with pygit2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.fleet import FleetFiles


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.test",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.test",
        "HOME": str(repo),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@pytest.fixture
def fleet_repo(fleet: FleetFiles) -> FleetFiles:
    """The base fleet committed on ``main`` of a fresh git repository."""
    git(fleet.root, "init", "-q", "-b", "main")
    git(fleet.root, "add", "-A")
    git(fleet.root, "commit", "-qm", "base fleet")
    return fleet
