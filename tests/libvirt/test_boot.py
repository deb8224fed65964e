"""A real virtual machine through the driver: a Debian kernel and a busybox initramfs boot,
read the seed CD and copy its manifests as a control-plane node does; new manifests reach
the running guest through a media change; new user data boots a new domain on the node's
disks; deleting the cluster leaves no volume behind."""

from __future__ import annotations

from agent.apply.passes import EventKind, Phase
from tests.libvirt.harness import LibvirtAgent, virsh, wait_for_console
from tests.libvirt.states import manifests, state
from tests.libvirt.test_daemon import ours, real_cluster
from tests.support.hosts import RealHost
from tests.support.libvirtd import Guest


def test_a_tiny_vm_boots_follows_its_seed_is_restarted_and_deleted(
    real_agent: LibvirtAgent, real_host: RealHost, guest: Guest
) -> None:
    agent, host, uri = real_agent, real_host, real_agent.uri
    name = agent.name("vm")
    node = f"{name}-main-1"

    first = agent.apply(state(agent.appliance, real_cluster(agent, host, name, workers=0)))

    assert first.ok, first
    old = agent.node_domain(node).name
    line = wait_for_console(agent.connection, old, rf"edgefleet-test: up {node} manifests: 01")
    assert line.endswith("manifests: 01-demo-a.yaml 02-demo-b.yaml"), (line, guest.why)

    files = manifests("a.yaml", "c.yaml")
    changed = agent.apply(
        state(agent.appliance, real_cluster(agent, host, name, workers=0, files=files))
    )
    assert changed.ok, changed
    line = wait_for_console(agent.connection, old, r"manifests: 01-demo-a.yaml 02-demo-c.yaml")
    assert "02-demo-b.yaml" not in line  # the guest removed the stale file it had copied

    disks = agent.node_domain(node).disks
    restarted = agent.apply(
        state(
            agent.appliance,
            real_cluster(agent, host, name, workers=0, files=files, user_data="# v2\n"),
            revision="rev-2",
        )
    )

    # new user data: a new domain boots on the old one's disks, once the old one is gone
    assert restarted.ok, restarted
    assert [(e.kind, e.subject) for e in restarted.cluster(name).events] == [
        (EventKind.REMOVED, node),
        (EventKind.RESTARTED, node),
    ]
    new = agent.node_domain(node).name
    assert new != old and agent.node_domain(node).disks == disks
    assert wait_for_console(agent.connection, new, rf"edgefleet-test: up {node} ")
    assert ours(virsh(uri, "list", "--all", "--name"), agent) == [new]
    assert all(
        old not in volume for volume in ours(virsh(uri, "vol-list", "--pool", host.vms), agent)
    )  # the old domain's seed went with it

    deleted = agent.apply(state(agent.appliance, revision="rev-3"))

    assert deleted.cluster(name).phase is Phase.DELETED
    assert ours(virsh(uri, "list", "--all", "--name"), agent) == []
    assert ours(virsh(uri, "vol-list", "--pool", host.vms), agent) == []
