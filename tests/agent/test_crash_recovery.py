"""``kill -9`` in the middle of an apply: the next run finishes or undoes the interrupted step,
with no doubled node and nothing leaked."""

from __future__ import annotations

import pytest

from agent.apply.inventory import Inventory
from agent.apply.passes import EventKind, Phase
from tests.support.appliances import TestAgent
from tests.support.states import cluster, state


def assert_converged(agent: TestAgent, name: str, nodes: int) -> None:
    containers = agent.containers(name)
    node_names = [c.labels["edgefleet.node"] for c in containers]
    assert len(node_names) == len(set(node_names)) == nodes, agent.container_names()
    assert {c.status for c in containers} == {"running"}
    assert agent.volume_names() == agent.data_volumes(name)
    assert agent.network_names() == [f"edgefleet-{name}"]
    recorded = sorted(r.name for r in agent.records() if r.kind == "container")
    assert recorded == agent.container_names(name)
    with Inventory.open(agent.data_dir) as inventory:
        assert inventory.open_steps() == []


@pytest.mark.parametrize(
    "stage",
    [
        pytest.param("intent", id="journaled-nothing-made"),
        pytest.param("created", id="container-made-not-started"),
    ],
)
def test_a_pass_killed_while_creating_a_node_is_finished_by_the_next(
    agent: TestAgent, stage: str
) -> None:
    name = agent.name("pos")
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance, workers=2))

    agent.apply_and_kill(desired, pause_at=f"create node {name}-workers-2", stage=stage)

    half_made = [c for c in agent.containers(name) if c.status == "created"]
    assert len(half_made) == (1 if stage == "created" else 0)
    assert len(agent.containers(name)) == 2 + len(half_made)

    result = agent.apply(desired)

    assert result.ok, result
    assert [e.kind for e in result.recovered] == [EventKind.RECOVERED]
    assert "undone" in result.recovered[0].message
    assert [t.title for t in result.cluster(name).tasks] == [f"create node {name}-workers-2"]
    assert_converged(agent, name, nodes=3)


def test_a_restart_killed_between_stop_and_start_is_finished_on_the_same_volume(
    agent: TestAgent,
) -> None:
    name = agent.name("pos")
    agent.apply(state(agent.appliance, cluster(name, appliance=agent.appliance)))
    old = agent.node_container(f"{name}-main-1")
    volume = agent.data_volume(old)
    changed = state(agent.appliance, cluster(name, appliance=agent.appliance, user_data="# v2\n"))

    agent.apply_and_kill(changed, pause_at=f"restart node {name}-main-1", stage="created")

    # the old container went first (its volume is the new one's); the new one was made
    nodes = [c for c in agent.containers(name) if c.labels["edgefleet.node"] == f"{name}-main-1"]
    assert [c.status for c in nodes] == ["created"] and nodes[0].name != old.name

    result = agent.apply(changed)

    assert result.ok, result
    assert_converged(agent, name, nodes=2)
    new = agent.node_container(f"{name}-main-1")
    assert new.name not in (old.name,) and agent.data_volume(new) == volume


def test_removing_a_cluster_still_provisioning_aborts_it(agent: TestAgent) -> None:
    name = agent.name("pos")
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance, workers=2))
    agent.apply_and_kill(desired, pause_at=f"create node {name}-workers-2", stage="created")
    assert len(agent.containers(name)) == 3

    result = agent.apply(state(agent.appliance))  # the cluster's file was deleted

    assert result.ok
    assert result.cluster(name).phase is Phase.ABORTED
    assert EventKind.ABORTED in [e.kind for e in result.cluster(name).events]
    assert agent.containers() == []
    assert agent.volume_names() == []
    assert agent.network_names() == []
    assert agent.records() == ()
