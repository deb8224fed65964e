"""Placement is checked before anything is made: a pool, network, bridge, image, CPU or
memory the host lacks stops the cluster with a one-line reason that names the pool, and
leaves no domain, volume or record behind."""

from __future__ import annotations

from typing import Any

import pytest

from agent.apply.passes import Phase
from agent.drivers import Reason
from tests.libvirt.harness import LibvirtAgent
from tests.libvirt.states import placement, resources, state, vm_cluster

WORKER_PLACEMENT = {"networkType": "bridge", "networks": ["br-test"], "dataStoragePool": "data"}


@pytest.mark.parametrize(
    ("pool", "resource_changes", "placement_changes", "message"),
    [
        ("main", {}, {"targetStoragePool": "nowhere"}, "storage pool nowhere does not exist"),
        (
            "workers",
            {"dataDiskGiB": 8},
            {**WORKER_PLACEMENT, "dataStoragePool": "gone"},
            "storage pool gone does not exist",
        ),
        ("main", {}, {"networks": ["default", "lan"]}, "network lan does not exist"),
        (
            "workers",
            {},
            {**WORKER_PLACEMENT, "networks": ["br-devices"]},
            "bridge br-devices does not exist on the host",
        ),
        ("main", {"cpuSet": "0-3"}, {}, "cpuset 0-3 is not within the host's online CPUs 0,2,4"),
        ("main", {"cpuSet": "one"}, {}, "cpuset 'one' is not a CPU list"),
        ("main", {"memoryGiB": 8}, {}, "needs 8 GiB of memory, the host has 3 GiB free of 3 GiB"),
        ("main", {"cpu": 13}, {}, "needs 13 vCPUs, the host has 12 free of 12"),
        ("main", {"rootDiskGiB": 1}, {}, "rootDiskGiB 1 is smaller than image base.qcow2"),
    ],
    ids=[
        "target-pool",
        "data-pool",
        "network",
        "bridge",
        "cpuset-offline",
        "cpuset-syntax",
        "memory",
        "cpu",
        "root-disk",
    ],
)
def test_a_node_that_does_not_fit_stops_its_cluster_before_anything_is_made(
    fast_agent: LibvirtAgent,
    pool: str,
    resource_changes: dict[str, Any],
    placement_changes: dict[str, Any],
    message: str,
) -> None:
    agent = fast_agent
    name = agent.name("pos")
    changed = (resources(**resource_changes), placement(**placement_changes))
    side = {"control": changed} if pool == "main" else {"worker": changed}
    result = agent.apply(
        state(agent.appliance, vm_cluster(name, appliance=agent.appliance, **side))
    )

    cluster = result.cluster(name)
    assert cluster.phase is Phase.ERROR
    assert cluster.reason is Reason.PLACEMENT_FAILED and not cluster.retryable
    assert cluster.message is not None and cluster.message.startswith(f"pool {pool}: ")
    assert message in cluster.message, cluster.message
    assert "\n" not in cluster.message
    assert {t.state for t in cluster.tasks} == {"skipped"}
    assert agent.domains() == [] and agent.volume_names() == [] and agent.records() == ()


def test_an_image_missing_from_the_image_pool_is_named(fast_agent: LibvirtAgent) -> None:
    agent = fast_agent
    name = agent.name("pos")
    desired = state(
        agent.appliance, vm_cluster(name, appliance=agent.appliance, image="jammy.qcow2")
    )

    cluster = agent.apply(desired).cluster(name)

    assert cluster.reason is Reason.PLACEMENT_FAILED
    assert cluster.message == "pool main: image jammy.qcow2 is not a volume of storage pool vms"
    assert agent.domains() == []


def test_expand_first_needs_room_for_both_nodes_contract_first_does_not(
    fast_agent: LibvirtAgent,
) -> None:
    agent = fast_agent
    name = agent.name("pos")
    # three 1 GiB nodes fill the test host's 3 GiB
    assert agent.apply(
        state(agent.appliance, vm_cluster(name, appliance=agent.appliance, workers=2))
    ).ok
    before = agent.domain_names()

    # a new root disk: the control-plane node is made anew (it shares no disk with the old)
    bigger = (resources(cpuSet="0", rootDiskGiB=5), placement())
    expand = vm_cluster(name, appliance=agent.appliance, workers=2, control=bigger)
    refused = agent.apply(state(agent.appliance, expand)).cluster(name)

    assert refused.reason is Reason.PLACEMENT_FAILED
    assert refused.message == (
        f"pool main: node {name}-main-1 needs 1 GiB of memory, the host has 0 GiB free of 3 GiB"
    )
    assert agent.domain_names() == before  # nothing removed either

    contract = vm_cluster(
        name, appliance=agent.appliance, workers=2, control=bigger, strategy="contract-first"
    )
    result = agent.apply(state(agent.appliance, contract))
    assert result.ok, result
    assert len(agent.domains()) == 3
    assert set(agent.domain_names()) - set(before) == {agent.node_domain(f"{name}-main-1").name}
