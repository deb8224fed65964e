"""The lifecycle on libvirt's test driver, through the same planner, inventory and journal as
Docker: scale up and down, replacement by each pool's strategy, drift put back and
reported, a cluster deleted with its volumes and seeds, a pass cut short finished by the
next, and a cluster removed while provisioning aborted."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agent.apply.inventory import Inventory
from agent.apply.passes import EventKind, Phase, Progress
from tests.libvirt.harness import LibvirtAgent
from tests.libvirt.states import placement, resources, state, vm_cluster


class Crash(Exception):
    """Stands for the agent dying at a chosen point of a pass."""


def crash_at(title: str, stage: str) -> Callable[[Progress], None]:
    def progress(update: Progress) -> None:
        if update.title == title and update.stage == stage:
            raise Crash(f"{title} {stage}")

    return progress


def three_volumes_per_node(agent: LibvirtAgent, cluster: str) -> None:
    for domain in agent.domains(cluster):
        kinds = sorted(
            name.split(".", 3)[3].split("-")[0] for name in agent.volumes_of(domain.name)
        )
        data = ["data.qcow2"] if domain.metadata.role == "worker" else []
        assert kinds == sorted(["root.qcow2", "seed", *data]), kinds
    used = {name for domain in agent.domain_names() for name in agent.volumes_of(domain)}
    assert set(agent.volume_names()) == used, "no volume outlives its node"


def test_scale_up_then_down(fast_agent: LibvirtAgent) -> None:
    agent = fast_agent
    name = agent.name("pos")
    agent.apply(state(agent.appliance, vm_cluster(name, appliance=agent.appliance, workers=1)))
    first = agent.node_domain(f"{name}-workers-1").name

    up = agent.apply(state(agent.appliance, vm_cluster(name, appliance=agent.appliance, workers=2)))

    assert [t.title for t in up.cluster(name).tasks] == [f"create node {name}-workers-2"]
    assert agent.node_domain(f"{name}-workers-1").name == first
    three_volumes_per_node(agent, name)

    down = agent.apply(state(agent.appliance, vm_cluster(name, appliance=agent.appliance)))

    assert down.ok
    assert [t.title.split(" (")[0] for t in down.cluster(name).tasks] == [
        f"remove node {name}-workers-2"
    ]
    assert sorted(d.metadata.node for d in agent.domains()) == [
        f"{name}-main-1",
        f"{name}-workers-1",
    ]
    three_volumes_per_node(agent, name)


def test_a_new_root_disk_replaces_each_node_by_its_pools_strategy(
    fast_agent: LibvirtAgent,
) -> None:
    agent = fast_agent
    name = agent.name("pos")
    agent.apply(state(agent.appliance, vm_cluster(name, appliance=agent.appliance)))
    old_control = agent.node_domain(f"{name}-main-1").name
    old_worker = agent.node_domain(f"{name}-workers-1").name
    old_roots = {agent.disk_of(f"{name}-{n}", "root") for n in ("main-1", "workers-1")}
    data = agent.disk_of(f"{name}-workers-1", "data")

    bigger = vm_cluster(
        name,
        appliance=agent.appliance,
        control=(resources(cpuSet="0", rootDiskGiB=5), placement()),
        worker=(
            resources(dataDiskGiB=8, rootDiskGiB=5),
            placement(networkType="bridge", networks=["br-test"], dataStoragePool="data"),
        ),
    )
    result = agent.apply(state(agent.appliance, bigger, revision="rev-2"))

    assert result.ok, result
    new_control = agent.node_domain(f"{name}-main-1")
    new_worker = agent.node_domain(f"{name}-workers-1")
    assert [t.title for t in result.cluster(name).tasks] == [
        # expand-first: the new node runs first (it shares no disk with the old one)
        f"replace node {name}-main-1",
        f"remove node {name}-main-1 ({old_control})",
        # the new worker starts on the old one's data disk: the old one stops first
        f"remove node {name}-workers-1 ({old_worker})",
        f"replace node {name}-workers-1",
    ]
    assert new_control.metadata.revision == "rev-2"
    assert {new_control.name, new_worker.name}.isdisjoint({old_control, old_worker})
    new_roots = {agent.disk_of(f"{name}-{n}", "root") for n in ("main-1", "workers-1")}
    assert new_roots.isdisjoint(old_roots) and not old_roots & set(agent.volume_names())
    assert agent.disk_of(f"{name}-workers-1", "data") == data  # its data disk stays
    three_volumes_per_node(agent, name)


def test_new_user_data_restarts_each_node_on_its_own_disks(fast_agent: LibvirtAgent) -> None:
    agent = fast_agent
    name = agent.name("pos")
    agent.apply(state(agent.appliance, vm_cluster(name, appliance=agent.appliance)))
    old_control = agent.node_domain(f"{name}-main-1").name
    old_worker = agent.node_domain(f"{name}-workers-1").name
    disks = {n: agent.node_domain(f"{name}-{n}").disks for n in ("main-1", "workers-1")}

    changed = vm_cluster(name, appliance=agent.appliance, user_data="ntp: [pool]\n")
    result = agent.apply(state(agent.appliance, changed, revision="rev-2"))

    assert result.ok, result
    new_control = agent.node_domain(f"{name}-main-1")
    # a node restarts on the disks its old domain used: the old one stops first, whatever
    # its pool's strategy (the control plane's is expand-first)
    assert [t.title for t in result.cluster(name).tasks] == [
        f"remove node {name}-main-1 ({old_control})",
        f"restart node {name}-main-1",
        f"remove node {name}-workers-1 ({old_worker})",
        f"restart node {name}-workers-1",
    ]
    assert new_control.name != old_control
    assert agent.seed(new_control.name).user_data.endswith("ntp: [pool]\n")
    assert {n: agent.node_domain(f"{name}-{n}").disks for n in disks} == disks
    three_volumes_per_node(agent, name)


def test_a_domain_destroyed_by_hand_is_started_again_and_reported(
    fast_agent: LibvirtAgent,
) -> None:
    agent = fast_agent
    name = agent.name("pos")
    desired = state(agent.appliance, vm_cluster(name, appliance=agent.appliance))
    agent.apply(desired)
    worker = agent.node_domain(f"{name}-workers-1").name
    uuid = agent.connection.lookupByName(worker).UUIDString()
    agent.connection.lookupByName(worker).destroy()

    result = agent.apply(desired)

    assert result.ok
    assert agent.node_domain(f"{name}-workers-1").state == "running"
    assert agent.connection.lookupByName(worker).UUIDString() == uuid  # the same domain
    (event,) = result.cluster(name).events
    assert (event.kind, event.subject) == (EventKind.DRIFT, f"{name}-workers-1")
    assert "stopped" in event.message


def test_a_domain_undefined_by_hand_comes_back_on_its_own_disks(fast_agent: LibvirtAgent) -> None:
    agent = fast_agent
    name = agent.name("pos")
    desired = state(agent.appliance, vm_cluster(name, appliance=agent.appliance))
    agent.apply(desired)
    control = agent.node_domain(f"{name}-main-1").name
    root_name = agent.disk_of(f"{name}-main-1", "root")
    root = agent.connection.storagePoolLookupByName("vms").storageVolLookupByName(root_name)
    key = root.key()
    handle = agent.connection.lookupByName(control)
    handle.destroy()
    handle.undefine()

    result = agent.apply(desired)

    assert result.ok
    again = agent.node_domain(f"{name}-main-1")
    assert again.name == control and again.state == "running"
    kept = agent.connection.storagePoolLookupByName("vms").storageVolLookupByName(root_name)
    assert kept.key() == key  # its root disk, not a fresh clone
    (event,) = result.cluster(name).events
    assert (event.kind, event.subject) == (EventKind.DRIFT, f"{name}-main-1")
    three_volumes_per_node(agent, name)


@pytest.mark.parametrize("how", ["file-deleted", "marked-absent"])
def test_removing_a_cluster_deletes_its_domains_volumes_and_seeds(
    fast_agent: LibvirtAgent, how: str
) -> None:
    agent = fast_agent
    gone, kept = agent.name("gone"), agent.name("kept")
    agent.apply(
        state(
            agent.appliance,
            vm_cluster(gone, appliance=agent.appliance),
            vm_cluster(kept, appliance=agent.appliance, workers=0),
        )
    )
    kept_domains = agent.domain_names(kept)
    remaining = [vm_cluster(kept, appliance=agent.appliance, workers=0)]
    if how == "marked-absent":
        remaining.append(vm_cluster(gone, appliance=agent.appliance, phase="absent"))

    result = agent.apply(state(agent.appliance, *remaining, revision="rev-2"))

    assert result.ok
    assert result.cluster(gone).phase is Phase.DELETED
    assert [t.title.split(" (")[0] for t in result.cluster(gone).tasks] == [
        f"remove node {gone}-workers-1",  # workers first, the control plane last
        f"remove node {gone}-main-1",
    ]
    assert agent.domains(gone) == []
    assert all(name.split(".")[1] == kept for name in agent.volume_names())
    assert agent.domain_names(kept) == kept_domains
    assert {r.cluster for r in agent.records()} == {kept}


def test_a_pass_cut_short_while_creating_is_finished_by_the_next(fast_agent: LibvirtAgent) -> None:
    agent = fast_agent
    name = agent.name("pos")
    desired = state(agent.appliance, vm_cluster(name, appliance=agent.appliance, workers=2))
    with pytest.raises(Crash):
        agent.apply(desired, on_progress=crash_at(f"create node {name}-workers-2", "created"))
    half_made = [d for d in agent.domains() if d.state == "shutoff"]
    assert [d.metadata.node for d in half_made] == [f"{name}-workers-2"]

    result = agent.apply(desired)

    assert result.ok, result
    assert [e.kind for e in result.recovered] == [EventKind.RECOVERED]
    assert [t.title for t in result.cluster(name).tasks] == [f"create node {name}-workers-2"]
    nodes = [d.metadata.node for d in agent.domains()]
    assert len(nodes) == len(set(nodes)) == 3
    three_volumes_per_node(agent, name)
    with Inventory.open(agent.data_dir) as inventory:
        assert inventory.open_steps() == []


def test_removing_a_cluster_still_provisioning_aborts_it(fast_agent: LibvirtAgent) -> None:
    agent = fast_agent
    name = agent.name("pos")
    desired = state(agent.appliance, vm_cluster(name, appliance=agent.appliance, workers=2))
    with pytest.raises(Crash):
        agent.apply(desired, on_progress=crash_at(f"create node {name}-workers-2", "created"))

    result = agent.apply(state(agent.appliance))

    assert result.ok
    assert result.cluster(name).phase is Phase.ABORTED
    assert EventKind.ABORTED in [e.kind for e in result.cluster(name).events]
    assert agent.domains() == [] and agent.volume_names() == [] and agent.records() == ()
