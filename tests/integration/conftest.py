"""Integration tier: real git. Provides ``fleet_repo``, the small fleet committed on ``main``."""

from __future__ import annotations

import pytest

from tests.support.fleet import FleetFiles
from tests.support.git import git


@pytest.fixture
def fleet_repo(fleet: FleetFiles) -> FleetFiles:
    """The base fleet committed on ``main`` of a fresh git repository."""
    git(fleet.root, "init", "-q", "-b", "main")
    git(fleet.root, "add", "-A")
    git(fleet.root, "commit", "-qm", "base fleet")
    return fleet
