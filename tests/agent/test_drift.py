"""Drift: what an operator changes by hand on a node is noticed on the next pass, put back and
reported."""

from __future__ import annotations

from agent.apply.passes import EventKind
from tests.support.appliances import MANIFESTS, TestAgent
from tests.support.states import cluster, state


def test_a_node_stopped_by_hand_is_started_again_and_reported(agent: TestAgent) -> None:
    name = agent.name("pos")
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance))
    agent.apply(desired)
    worker = agent.node_container(f"{name}-workers-1")
    worker.stop(timeout=0)

    result = agent.apply(desired)

    assert result.ok
    worker.reload()
    assert worker.status == "running"
    assert agent.node_container(f"{name}-workers-1").id == worker.id  # the same container
    (event,) = result.cluster(name).events
    assert (event.kind, event.subject) == (EventKind.DRIFT, f"{name}-workers-1")
    assert "stopped" in event.message


def test_a_node_removed_by_hand_is_created_again_and_reported(agent: TestAgent) -> None:
    name = agent.name("pos")
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance))
    agent.apply(desired)
    control = agent.node_container(f"{name}-main-1")
    control.remove(force=True)

    result = agent.apply(desired)

    assert result.ok
    again = agent.node_container(f"{name}-main-1")
    assert again.name == control.name and again.id != control.id
    assert again.status == "running"
    assert agent.listing(again) == ["01-demo-a.yaml", "02-demo-b.yaml"]
    (event,) = result.cluster(name).events
    assert (event.kind, event.subject) == (EventKind.DRIFT, f"{name}-main-1")
    assert "removed" in event.message
    assert len(agent.containers(name)) == 2


def test_a_manifest_changed_by_hand_is_restored_and_reported(agent: TestAgent) -> None:
    name = agent.name("pos")
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance))
    agent.apply(desired)
    control = agent.node_container(f"{name}-main-1")
    control.exec_run(["sh", "-c", f"echo edited > {MANIFESTS}/01-demo-a.yaml"])
    control.exec_run(["rm", f"{MANIFESTS}/02-demo-b.yaml"])

    result = agent.apply(desired)

    assert result.ok
    files = desired.clusters[0].manifests
    assert agent.read(control, f"{MANIFESTS}/01-demo-a.yaml") == files[0].content
    assert agent.read(control, f"{MANIFESTS}/02-demo-b.yaml") == files[1].content
    (event,) = result.cluster(name).events
    assert event.kind is EventKind.DRIFT
    assert "01-demo-a.yaml, 02-demo-b.yaml" in event.message
