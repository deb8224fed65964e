"""The planner alone (no engine): which steps a state, the inventory and an observation give,
and in which order."""

from __future__ import annotations

from agent.apply.inventory import ClusterStage, Record
from agent.apply.planning import Plan, plan_state
from agent.apply.steps import CreateNode, RemoveNode, RemoveVolume, StartNode, Step
from agent.contract import ClusterState, DesiredState
from agent.drivers import Observation, ObservedContainer, ObservedVolume
from agent.naming import (
    container_name,
    data_volume,
    manifest_files,
    network_name,
    spec_digest,
    volume_name,
)
from tests.support.states import cluster, state

IMAGE = "example/node:1"


def running(desired: DesiredState, *, state_of: str = "running") -> Observation:
    """What the engine would show after ``desired`` was applied."""
    containers, volumes, files = {}, {}, {}
    for c in desired.clusters:
        for node in c.nodes:
            spec = spec_digest(node, default_image=IMAGE)
            name = container_name(node.name, spec)
            volume = data_volume(node)
            containers[name] = ObservedContainer(
                name, c.name, node.pool, node.name, node.role, spec, state_of, (volume,)
            )
            volumes[volume] = ObservedVolume(volume, c.name, name, node.name)
            if node.role == "control-plane":
                files[name] = {f.filename: f.sha256 for f in manifest_files(c.manifests)}
    networks = {network_name(c.name): c.name for c in desired.clusters}
    return Observation(networks, containers, volumes, files)


def recorded(observed: Observation) -> list[Record]:
    return [
        *(Record("network", n, c) for n, c in observed.networks.items()),
        *(Record("container", n, c.cluster, node=c.node) for n, c in observed.containers.items()),
        *(Record("volume", n, v.cluster) for n, v in observed.volumes.items()),
    ]


def plan(
    desired: DesiredState,
    observed: Observation,
    *,
    records: list[Record] | None = None,
    stages: dict[str, ClusterStage] | None = None,
) -> Plan:
    return plan_state(
        desired,
        records=recorded(observed) if records is None else records,
        stages=stages or {},
        observed=observed,
        default_image=IMAGE,
        mode="containerized",
    )


def pos(*, workers: int = 1, user_data: str = "") -> ClusterState:
    return cluster("pos", appliance="a1", workers=workers, user_data=user_data)


def who(step: Step) -> tuple[str, str]:
    node = step.launch.node if isinstance(step, CreateNode) else getattr(step, "node", "")
    return type(step).__name__, node


def test_what_already_runs_needs_no_step() -> None:
    desired = state("a1", pos(workers=2))
    assert plan(desired, running(desired)).cluster("pos").steps == ()


def test_the_control_plane_pool_comes_first_even_when_listed_last() -> None:
    desired = state("a1", pos(workers=2))
    steps = plan(desired, Observation()).cluster("pos").steps
    assert [s.title for s in steps] == [
        "create network edgefleet-pos",
        "create node pos-main-1",
        "create node pos-workers-1",
        "create node pos-workers-2",
    ]


def test_a_change_k3s_applies_by_restart_keeps_each_nodes_volume() -> None:
    before = state("a1", pos(workers=1))
    after = state("a1", pos(workers=1, user_data="v2\n"))
    steps = plan(after, running(before)).cluster("pos").steps
    # the old container stops before the new one starts on its volume, whatever the strategy
    assert [who(s) for s in steps] == [
        ("RemoveNode", "pos-main-1"),
        ("CreateNode", "pos-main-1"),
        ("RemoveNode", "pos-workers-1"),
        ("CreateNode", "pos-workers-1"),
    ]
    removals = [s for s in steps if isinstance(s, RemoveNode)]
    creations = [s for s in steps if isinstance(s, CreateNode)]
    assert [r.volumes for r in removals] == [(), ()]
    assert [c.reason for c in creations] == ["restart", "restart"]
    assert [c.launch.volume for c in creations] == [
        data_volume(n) for n in sorted(before.clusters[0].nodes, key=lambda n: n.pool)
    ]


def test_a_change_that_loses_data_replaces_by_the_pools_strategy() -> None:
    before = state("a1", pos(workers=1))
    changed = pos(workers=1)
    # the pools swap roles: each node's data volume was made for the other role
    swapped = changed.model_copy(
        update={
            "nodes": [
                n.model_copy(
                    update={"role": "worker" if n.role == "control-plane" else "control-plane"}
                )
                for n in changed.nodes
            ]
        }
    )
    steps = plan(state("a1", swapped), running(before)).cluster("pos").steps
    assert [who(s) for s in steps] == [
        ("CreateNode", "pos-main-1"),  # expand-first: a new, empty volume
        ("RemoveNode", "pos-main-1"),
        ("RemoveNode", "pos-workers-1"),  # contract-first
        ("CreateNode", "pos-workers-1"),
    ]
    old = {n.name: data_volume(n) for n in before.clusters[0].nodes}
    removals = {s.node: s.volumes for s in steps if isinstance(s, RemoveNode)}
    assert removals == {name: (volume,) for name, volume in old.items()}


def test_a_node_made_before_volumes_outlived_containers_gets_a_volume_of_its_own() -> None:
    before = state("a1", pos(workers=0))
    observed = running(before)
    (node,) = observed.containers.values()
    name = f"{node.node}-0a1b2c3d"  # its spec changed since; its volume is named after it
    legacy = ObservedContainer(
        name, "pos", node.pool, node.node, node.role, "old", "running", (volume_name(name),)
    )
    old = Observation(
        observed.networks,
        {name: legacy},
        {volume_name(name): ObservedVolume(volume_name(name), "pos", name)},
        {},
    )
    steps = plan(before, old).cluster("pos").steps
    assert [type(s).__name__ for s in steps] == ["CreateNode", "RemoveNode"]  # expand-first
    (removal,) = [s for s in steps if isinstance(s, RemoveNode)]
    assert removal.volumes == (volume_name(name),)
    assert not any(isinstance(s, RemoveVolume) for s in steps)


def test_a_recorded_node_that_is_gone_is_drift_an_unrecorded_one_is_new() -> None:
    desired = state("a1", pos(workers=1))
    observed = running(desired)
    worker = next(c for c in observed.containers.values() if c.role == "worker")
    without = Observation(
        observed.networks,
        {n: c for n, c in observed.containers.items() if c is not worker},
        observed.volumes,
        observed.manifests,
    )
    (drift,) = plan(desired, without, records=recorded(observed)).cluster("pos").steps
    (fresh,) = plan(desired, without).cluster("pos").steps
    assert isinstance(drift, CreateNode) and drift.reason == "drift"
    assert isinstance(fresh, CreateNode) and fresh.reason == "new"


def test_a_stopped_node_is_started() -> None:
    desired = state("a1", pos(workers=0))
    steps = plan(desired, running(desired, state_of="exited")).cluster("pos").steps
    assert [type(s) for s in steps] == [StartNode]


def test_a_removed_cluster_is_aborted_while_provisioning_and_deleted_once_it_ran() -> None:
    observed = running(state("a1", pos(workers=1)))
    empty = state("a1")
    aborted = plan(empty, observed, stages={"pos": ClusterStage.PROVISIONING}).cluster("pos")
    deleted = plan(empty, observed, stages={"pos": ClusterStage.RUNNING}).cluster("pos")
    assert (aborted.action, deleted.action) == ("abort", "delete")
    assert [s.title.split(" (")[0] for s in deleted.steps] == [
        "remove node pos-workers-1",
        "remove node pos-main-1",
        "remove network edgefleet-pos",
    ]


def test_a_virtualized_cluster_is_not_touched_by_the_docker_driver() -> None:
    vm = pos().model_copy(update={"mode": "virtualized"})
    result = plan(state("a1", vm), Observation()).cluster("pos")
    assert (result.action, result.steps) == ("unsupported", ())
    assert (
        result.message == "virtualized clusters are not served by this agent's containerized driver"
    )
