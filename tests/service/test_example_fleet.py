"""The example fleet's real rendered documents, handed over as the reconcile loop will:
served byte-exact with verifiable digests, canary first, and the three-appliance hospital
cluster taking a node change one appliance at a time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.contract import ClusterState, DesiredState, MaintenanceWindow, seal
from reconciler.cli.common import builtin_packs
from reconciler.models import parse_duration
from reconciler.rendering import render_repository
from reconciler.rollout import Release, SiteRelease, Wave
from reconciler.sources import DirectoryTree
from reconciler.validation import check_repository

from .conftest import Harness
from .fleets import digests, revision

EXAMPLE = Path(__file__).resolve().parents[2] / "fleet-example"


def example_release(
    sha: str, *, image: str | None = None, images: Mapping[str, str] | None = None
) -> Release:
    """What the loop builds from a validated, rendered repository; with ``image`` on
    hospital-1's nodes, and each image of ``images`` on its site's."""
    images = {**({"hospital-1": image} if image is not None else {}), **(images or {})}
    checked = check_repository(DirectoryTree(EXAMPLE), builtin=builtin_packs())
    assert not checked.diagnostics
    repo = checked.repo
    assert repo.fleet is not None
    rendered = render_repository(repo, checked.registry, revision=sha)
    rollout = repo.fleet.model.spec.rollout
    sites = {}
    for name, files in repo.sites.items():
        assert files.site is not None
        spec = files.site.model
        states = rendered[name]
        if name in images:
            states = {a: _with_image(s, images[name]) for a, s in states.items()}
        sites[name] = SiteRelease(
            site=name,
            labels=dict(spec.metadata.labels),
            timezone=spec.spec.timezone,
            maintenance_windows=tuple(
                MaintenanceWindow(days=list(w.days), start=w.start, duration=w.duration)
                for w in spec.spec.maintenanceWindows
            ),
            states=states,
        )
    return Release(
        revision=sha,
        waves=tuple(Wave(w.name, dict(w.selector.labels)) for w in rollout.waves),
        max_failures=rollout.maxFailures,
        soak_seconds=parse_duration(rollout.soak).total_seconds(),
        sites=sites,
    )


def _with_image(state: DesiredState, image: str) -> DesiredState:
    clusters = [
        ClusterState.model_validate(
            {**c.model_dump(), "nodes": [{**n.model_dump(), "image": image} for n in c.nodes]}
        )
        for c in state.clusters
    ]
    return seal(
        appliance=state.appliance, site=state.site, revision=state.revision, clusters=clusters
    )


@pytest.fixture(scope="module")
def releases() -> tuple[Release, Release]:
    return example_release(revision("ex1")), example_release(revision("ex2"), image="k3s:ex2")


def test_the_example_fleet_rolls_out_canary_first_and_one_hypervisor_at_a_time(
    server: Harness, releases: tuple[Release, Release]
) -> None:
    first, second = releases
    agents = {a: server.agent(a) for a in digests(first)}
    server.rollout.record_release(first)
    served = {a: agent.digest() for a, agent in agents.items()}
    assert [a for a, d in served.items() if d] == ["grocery-0412-vm"]
    body = agents["grocery-0412-vm"].desired()
    state = DesiredState.model_validate_json(body.content)
    assert state.computed_digest() == state.digest == body.headers["ETag"].strip('"')
    assert state == first.sites["grocery-0412"].states["grocery-0412-vm"]

    agents["grocery-0412-vm"].apply()
    server.clock.advance(seconds=first.soak_seconds + 1)
    agents["grocery-0412-vm"].apply()
    assert {a: agent.digest() for a, agent in agents.items()} == digests(first)
    for agent in agents.values():
        agent.apply()
    server.clock.advance(seconds=first.soak_seconds + 1)
    for agent in agents.values():
        agent.apply()
    assert server.fleet()["rollout"]["state"] == "done"

    # a node image change for hospital-1 only: no canary change, so no canary wait; the
    # site's window is Sat/Sun 01:00-05:00 Chicago; the hypervisors go one at a time
    server.rollout.record_release(second)
    hospital = ["hospital-1-kvm-01", "hospital-1-kvm-02", "hospital-1-kvm-03"]
    assert [agents[a].digest() for a in hospital] == [digests(first)[a] for a in hospital]
    server.clock.set(datetime(2025, 3, 8, 7, 0, tzinfo=UTC))  # Saturday 01:00 in Chicago
    server.rollout.tick()
    for done, appliance in enumerate(hospital):
        expected = [digests(second if i <= done else first)[a] for i, a in enumerate(hospital)]
        assert [agents[a].digest() for a in hospital] == expected
        agents[appliance].apply()
