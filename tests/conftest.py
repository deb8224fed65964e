"""Shared fixtures for every tier.

Tiers, each with its own conftest:
- ``unit/``: pure functions and models, no files outside ``tmp_path``;
- ``component/``: whole commands over fleet repositories written to ``tmp_path``;
- ``integration/``: real dependencies (git repositories made with pygit2 and the ``git``
  command; later a real HTTP server, Docker engine and libvirt).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fleet import FleetFiles, write_base_fleet

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fleet(tmp_path: Path) -> FleetFiles:
    """A small valid fleet (three sites, both cluster modes) in a temporary folder."""
    files = FleetFiles(tmp_path / "fleet")
    write_base_fleet(files)
    return files


@pytest.fixture
def example_fleet() -> Path:
    return REPO_ROOT / "fleet-example"
