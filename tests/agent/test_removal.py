"""Removing a cluster from the state deletes its containers, volumes and network, and only
its own."""

from __future__ import annotations

import pytest

from agent.apply.passes import EventKind, Phase
from tests.support.appliances import TestAgent
from tests.support.states import cluster, state


@pytest.mark.parametrize("how", ["file-deleted", "marked-absent"])
def test_removing_a_running_cluster_deletes_everything_it_had(agent: TestAgent, how: str) -> None:
    gone, kept = agent.name("gone"), agent.name("kept")
    agent.apply(
        state(
            agent.appliance,
            cluster(gone, appliance=agent.appliance, workers=2),
            cluster(kept, appliance=agent.appliance, workers=1),
        )
    )
    kept_before = {c.name: c.id for c in agent.containers(kept)}
    remaining = [cluster(kept, appliance=agent.appliance, workers=1)]
    if how == "marked-absent":
        remaining.append(cluster(gone, appliance=agent.appliance, workers=2, phase="absent"))

    result = agent.apply(state(agent.appliance, *remaining, revision="rev-2"))

    assert result.ok
    assert result.cluster(gone).phase is Phase.DELETED
    titles = [t.title.split(" (")[0] for t in result.cluster(gone).tasks]
    assert titles == [  # workers first, the control plane last, then the network
        f"remove node {gone}-workers-1",
        f"remove node {gone}-workers-2",
        f"remove node {gone}-main-1",
        f"remove network edgefleet-{gone}",
    ]
    assert result.cluster(gone).events[-1].kind is EventKind.DELETED
    assert agent.containers(gone) == []
    assert agent.network_names() == [f"edgefleet-{kept}"]
    assert agent.volume_names() == agent.data_volumes(kept)
    assert {c.name: c.id for c in agent.containers(kept)} == kept_before
    assert {r.cluster for r in agent.records()} == {kept}

    again = agent.apply(state(agent.appliance, *remaining, revision="rev-2"))
    assert [c.name for c in again.clusters if c.tasks] == []


def test_a_volume_left_behind_by_hand_is_removed_with_its_cluster(agent: TestAgent) -> None:
    name = agent.name("pos")
    agent.apply(state(agent.appliance, cluster(name, appliance=agent.appliance, workers=1)))
    worker = agent.node_container(f"{name}-workers-1")
    worker.remove(force=True)  # by hand, without its volume

    result = agent.apply(state(agent.appliance))

    assert result.cluster(name).phase is Phase.DELETED
    assert agent.volume_names() == []
    assert agent.containers() == []
