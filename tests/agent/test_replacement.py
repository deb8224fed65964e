"""A node whose spec changes starts again on its data volume, its old container stopped first,
as the engine's own event log shows; a change that loses the node's data (its role) replaces
it on a new volume by its pool's strategy: expand-first starts the new container before the
old one is destroyed, contract-first destroys first."""

from __future__ import annotations

from datetime import datetime

from agent.apply.passes import EventKind
from agent.contract import ClusterState
from tests.support.appliances import TestAgent
from tests.support.states import cluster, state

MARKER = "/var/lib/rancher/k3s/marker"


def test_a_change_k3s_applies_by_restart_keeps_each_nodes_data(agent: TestAgent) -> None:
    name = agent.name("pos")
    agent.apply(state(agent.appliance, cluster(name, appliance=agent.appliance, workers=1)))
    old_control = agent.node_container(f"{name}-main-1")
    old_worker = agent.node_container(f"{name}-workers-1")
    volumes = agent.data_volumes(name)
    for node in (old_control, old_worker):
        assert node.exec_run(["sh", "-c", f"echo {node.name} > {MARKER}"]).exit_code == 0
    since = datetime.now()

    changed = cluster(name, appliance=agent.appliance, workers=1, user_data="ntp: [pool]\n")
    result = agent.apply(state(agent.appliance, changed, revision="rev-2"))

    assert result.ok, result
    new_control = agent.node_container(f"{name}-main-1")
    new_worker = agent.node_container(f"{name}-workers-1")
    assert new_control.name != old_control.name and new_worker.name != old_worker.name
    assert new_control.labels["edgefleet.revision"] == "rev-2"
    log = agent.container_events(name, since)
    assert log == [  # whatever the strategy: the old container stops before the new one starts
        ("destroy", old_control.name),
        ("create", new_control.name),
        ("start", new_control.name),
        ("destroy", old_worker.name),
        ("create", new_worker.name),
        ("start", new_worker.name),
    ]
    assert [(e.kind, e.subject) for e in result.cluster(name).events] == [
        (EventKind.REMOVED, f"{name}-main-1"),
        (EventKind.RESTARTED, f"{name}-main-1"),
        (EventKind.REMOVED, f"{name}-workers-1"),
        (EventKind.RESTARTED, f"{name}-workers-1"),
    ]
    assert agent.listing(new_control) == ["01-demo-a.yaml", "02-demo-b.yaml"]
    assert agent.read(new_control, "/etc/edgefleet/user-data.yaml").endswith("ntp: [pool]\n")
    assert agent.data_volumes(name) == volumes == agent.volume_names()
    assert agent.read(new_control, MARKER) == f"{old_control.name}\n"
    assert agent.read(new_worker, MARKER) == f"{old_worker.name}\n"


def swapped(found: ClusterState) -> ClusterState:
    """The pools swap roles: each node's data was made for the other role."""
    flip = {"control-plane": "worker", "worker": "control-plane"}
    return found.model_copy(
        update={"nodes": [n.model_copy(update={"role": flip[n.role]}) for n in found.nodes]}
    )


def test_a_change_that_loses_data_replaces_by_the_pools_strategy(agent: TestAgent) -> None:
    name = agent.name("pos")
    # control-plane pool expand-first, worker pool contract-first
    agent.apply(state(agent.appliance, cluster(name, appliance=agent.appliance, workers=1)))
    old_control = agent.node_container(f"{name}-main-1").name
    old_worker = agent.node_container(f"{name}-workers-1").name
    old_volumes = agent.data_volumes(name)
    since = datetime.now()

    changed = swapped(cluster(name, appliance=agent.appliance, workers=1))
    result = agent.apply(state(agent.appliance, changed, revision="rev-2"))

    assert result.ok, result
    new_control = agent.node_container(f"{name}-main-1").name
    new_worker = agent.node_container(f"{name}-workers-1").name
    assert agent.container_events(name, since) == [
        ("create", new_control),  # expand-first: the new node runs first,
        ("start", new_control),
        ("destroy", old_control),  # then the old one goes
        ("destroy", old_worker),  # contract-first: the old node goes first
        ("create", new_worker),
        ("start", new_worker),
    ]
    assert [(e.kind, e.subject) for e in result.cluster(name).events] == [
        (EventKind.REPLACED, f"{name}-main-1"),
        (EventKind.REMOVED, f"{name}-main-1"),
        (EventKind.REMOVED, f"{name}-workers-1"),
        (EventKind.REPLACED, f"{name}-workers-1"),
    ]
    new_volumes = agent.data_volumes(name)
    assert set(new_volumes).isdisjoint(old_volumes) and agent.volume_names() == new_volumes


def test_a_new_default_image_restarts_the_nodes_that_use_it(agent: TestAgent) -> None:
    name = agent.name("pos")
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance, workers=1))
    agent.apply(desired)
    before = set(agent.container_names(name))
    agent.client.images.get(agent.image).tag(agent.image + "-next")

    try:
        result = agent.apply(desired, default_image=agent.image + "-next")
    finally:
        agent.remove_everything()
        agent.client.images.remove(agent.image + "-next")

    assert result.ok, result
    assert [t.title for t in result.cluster(name).tasks] == [
        f"remove node {name}-main-1 ({sorted(before)[0]})",
        f"restart node {name}-main-1",
        f"remove node {name}-workers-1 ({sorted(before)[1]})",
        f"restart node {name}-workers-1",
    ]
