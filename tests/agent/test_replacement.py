"""A node whose spec changes is replaced, by its pool's strategy, as the engine's own event log
shows: expand-first starts the new container before the old one is destroyed, contract-first
destroys first."""

from __future__ import annotations

from datetime import datetime

from agent.apply.passes import EventKind
from tests.support.appliances import TestAgent
from tests.support.states import cluster, state


def test_a_spec_change_replaces_each_node_by_its_pools_strategy(agent: TestAgent) -> None:
    name = agent.name("pos")
    # control-plane pool expand-first, worker pool contract-first
    agent.apply(state(agent.appliance, cluster(name, appliance=agent.appliance, workers=1)))
    old_control = agent.node_container(f"{name}-main-1").name
    old_worker = agent.node_container(f"{name}-workers-1").name
    since = datetime.now()

    changed = cluster(name, appliance=agent.appliance, workers=1, user_data="ntp: [pool]\n")
    result = agent.apply(state(agent.appliance, changed, revision="rev-2"))

    assert result.ok, result
    new_control = agent.node_container(f"{name}-main-1")
    new_worker = agent.node_container(f"{name}-workers-1")
    assert new_control.name != old_control and new_worker.name != old_worker
    assert new_control.labels["edgefleet.revision"] == "rev-2"
    log = agent.container_events(name, since)
    assert log == [
        ("create", new_control.name),  # expand-first: the new node runs first,
        ("start", new_control.name),
        ("destroy", old_control),  # then the old one goes
        ("destroy", old_worker),  # contract-first: the old node goes first
        ("create", new_worker.name),
        ("start", new_worker.name),
    ]
    assert [(e.kind, e.subject) for e in result.cluster(name).events] == [
        (EventKind.REPLACED, f"{name}-main-1"),
        (EventKind.REMOVED, f"{name}-main-1"),
        (EventKind.REMOVED, f"{name}-workers-1"),
        (EventKind.REPLACED, f"{name}-workers-1"),
    ]
    assert agent.listing(new_control) == ["01-demo-a.yaml", "02-demo-b.yaml"]
    assert agent.read(new_control, "/etc/edgefleet/user-data.yaml").endswith("ntp: [pool]\n")
    assert agent.volume_names() == sorted([f"{new_control.name}-data", f"{new_worker.name}-data"])


def test_a_new_default_image_replaces_the_nodes_that_use_it(agent: TestAgent) -> None:
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
        f"replace node {name}-main-1",
        f"remove node {name}-main-1 ({sorted(before)[0]})",
        f"remove node {name}-workers-1 ({sorted(before)[1]})",
        f"replace node {name}-workers-1",
    ]
