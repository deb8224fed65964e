"""The hostile-input suite: every payload of issue 14 and more, on the real commands and the
real server. Provides ``work`` (a scratch folder), ``probed`` (the small fleet with a
sensitive variable and a ``probe`` pack, as a git repository) and ``served`` (``edgefleet
serve`` over it, started by the test with the options it needs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fleet import FleetFiles
from tests.support.hostile import (
    Served,
    free_port,
    init_repository,
    probe_pack,
    sensitive_variable,
)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def probed(fleet: FleetFiles) -> FleetFiles:
    sensitive_variable(fleet)
    probe_pack(fleet, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\n")
    fleet.edit("fleet.yaml", "soak: 10m", "soak: 0s")
    init_repository(fleet)
    return fleet


@pytest.fixture
def served(probed: FleetFiles, work: Path) -> Iterator[Served]:
    found = Served(probed, work, free_port())
    try:
        yield found
    finally:
        found.stop()
