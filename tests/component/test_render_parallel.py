"""Rendering on several cores gives exactly what one process gives: the same documents and
digests, and the same problems for a broken template."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli.common import builtin_packs
from reconciler.errors import FleetError
from reconciler.rendering import Renderer, render_sites
from reconciler.rendering import sites as rendering_sites
from reconciler.sources import DirectoryTree
from reconciler.validation import check_repository
from tests.support.fleet import FleetFiles


def render(root: Path, *, processes: int) -> dict[str, dict[str, str]]:
    checked = check_repository(DirectoryTree(root), builtin=builtin_packs())
    assert not checked.diagnostics
    states = render_sites(
        checked.repo,
        checked.registry,
        revision="r1",
        sites=sorted(checked.repo.sites),
        renderer=Renderer(),
        processes=processes,
        min_sites=1,
    )
    return {site: {a: s.model_dump_json() for a, s in d.items()} for site, d in states.items()}


def test_two_processes_render_the_example_fleet_byte_for_byte(example_fleet: Path) -> None:
    one = render(example_fleet, processes=1)
    two = render(example_fleet, processes=2)
    assert len(one) > 3
    assert two == one


def test_a_template_that_fails_in_a_worker_is_reported_as_in_one_process(
    fleet: FleetFiles,
) -> None:
    fleet.edit("profiles/store-1.0.0.yaml", '"{{ vars.storeId }}"', '"{{ vars.nowhere }}"')
    problems = []
    for processes in (1, 2):
        with pytest.raises(FleetError) as raised:
            render(fleet.root, processes=processes)
        problems.append([str(d) for d in raised.value.diagnostics])
    assert problems[0] == problems[1]
    assert any("nowhere" in p for p in problems[0])


def test_the_fleet_index_is_built_once_not_for_every_chunk(
    example_fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index reads every site of the fleet: built for each chunk of a hundred sites, it
    cost ten thousand sites more than a second in each process."""
    one = render(example_fleet, processes=1)

    def refused(repo: object) -> None:
        raise AssertionError("the index was built again for a chunk")

    monkeypatch.setattr(rendering_sites, "build_index", refused)
    assert render(example_fleet, processes=2) == one
