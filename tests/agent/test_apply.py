"""A state applied to the real engine: the containers, labels, files and network it yields,
and that applying it again changes nothing."""

from __future__ import annotations

import re
from datetime import datetime

from agent.apply.passes import EventKind, Phase
from agent.contract import NodeResources
from tests.support.appliances import MANIFESTS, TestAgent
from tests.support.states import cluster, manifests, state


def test_first_apply_creates_the_network_the_nodes_and_their_files(agent: TestAgent) -> None:
    name = agent.name("pos")
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance, workers=2))

    result = agent.apply(desired)

    assert result.ok, result
    assert result.cluster(name).phase is Phase.RUNNING
    assert [t.progress for t in result.cluster(name).tasks] == [
        f"create network edgefleet-{name} 1/4",
        f"create node {name}-main-1 2/4",  # the control-plane pool first
        f"create node {name}-workers-1 3/4",
        f"create node {name}-workers-2 4/4",
    ]
    assert agent.network_names() == [f"edgefleet-{name}"]
    containers = agent.containers(name)
    assert [c.status for c in containers] == ["running"] * 3
    for container in containers:
        node = container.labels["edgefleet.node"]
        assert container.name is not None and container.name.startswith(f"{node}-")
        assert len(container.name) == len(node) + 9  # "-" and an 8-digit generation
        assert container.labels["edgefleet.cluster"] == name
        assert container.labels["edgefleet.revision"] == "rev-1"
        assert container.labels["edgefleet.digest"] == desired.digest
        assert container.labels["edgefleet.spec"].startswith("sha256:")
        assert list(container.attrs["NetworkSettings"]["Networks"]) == [f"edgefleet-{name}"]
        assert agent.read(container, "/etc/edgefleet/user-data.yaml").startswith(
            f"#cloud-config\nhostname: {node}\n"
        )
    control = agent.node_container(f"{name}-main-1")
    assert control.labels["edgefleet.role"] == "control-plane"
    assert control.labels["edgefleet.pool"] == "main"
    assert agent.listing(control) == ["01-demo-a.yaml", "02-demo-b.yaml"]
    assert (
        agent.read(control, f"{MANIFESTS}/02-demo-b.yaml")
        == desired.clusters[0].manifests[1].content
    )
    worker = agent.node_container(f"{name}-workers-1")
    assert worker.labels["edgefleet.role"] == "worker"
    assert agent.listing(worker) == []  # manifests go to control-plane nodes only
    mounts = {m["Destination"]: m["Name"] for m in control.attrs["Mounts"]}
    # the node's data volume, named after the node (it outlives its containers)
    assert re.fullmatch(rf"{name}-main-1-[0-9a-f]{{8}}-data", mounts["/var/lib/rancher/k3s"])
    assert agent.volume_names() == agent.data_volumes()


def test_the_same_state_applied_twice_changes_nothing(agent: TestAgent) -> None:
    name = agent.name("pos")
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance, workers=2))
    agent.apply(desired)
    before = {c.name: c.id for c in agent.containers()}
    since = datetime.now()

    again = agent.apply(desired)

    assert again.ok
    assert again.cluster(name).tasks == ()
    assert again.cluster(name).events == ()
    assert {c.name: c.id for c in agent.containers()} == before
    assert agent.container_events(name, since) == []


def test_node_resources_become_container_limits(agent: TestAgent) -> None:
    name = agent.name("pos")
    base = cluster(name, appliance=agent.appliance, workers=1)
    limited = base.nodes[0].model_copy(
        update={"resources": NodeResources(cpu=1, memoryGiB=1, rootDiskGiB=10, cpuSet="0")}
    )
    desired = state(agent.appliance, base.model_copy(update={"nodes": [limited, *base.nodes[1:]]}))

    assert agent.apply(desired).ok

    host = agent.node_container(f"{name}-workers-1").attrs["HostConfig"]
    assert (host["NanoCpus"], host["Memory"], host["CpusetCpus"]) == (10**9, 1024**3, "0")
    assert agent.node_container(f"{name}-main-1").attrs["HostConfig"]["NanoCpus"] == 0


def test_manifests_removed_from_the_state_are_removed_from_the_node(agent: TestAgent) -> None:
    name = agent.name("pos")
    files = manifests("a.yaml", "b.yaml", "c.yaml")
    agent.apply(state(agent.appliance, cluster(name, appliance=agent.appliance, files=files)))
    control = agent.node_container(f"{name}-main-1")
    # a file k3s (or an operator) put there is none of the agent's business
    assert control.exec_run(["sh", "-c", f"echo x > {MANIFESTS}/coredns.yaml"]).exit_code == 0

    fewer = manifests("a.yaml", "c.yaml")
    result = agent.apply(
        state(agent.appliance, cluster(name, appliance=agent.appliance, files=fewer))
    )

    assert result.ok
    assert agent.node_container(f"{name}-main-1").id == control.id  # files change, node stays
    assert agent.listing(control) == ["01-demo-a.yaml", "02-demo-c.yaml", "coredns.yaml"]
    assert agent.read(control, f"{MANIFESTS}/02-demo-c.yaml") == fewer[1].content
    assert [e.kind for e in result.cluster(name).events] == [EventKind.REMOVED]
    recorded = sorted(r.name for r in agent.records() if r.kind == "manifest")
    assert recorded == ["01-demo-a.yaml", "02-demo-c.yaml"]


def test_scale_up_then_down(agent: TestAgent) -> None:
    name = agent.name("pos")
    agent.apply(state(agent.appliance, cluster(name, appliance=agent.appliance, workers=1)))
    first = agent.node_container(f"{name}-workers-1").id

    up = agent.apply(state(agent.appliance, cluster(name, appliance=agent.appliance, workers=3)))

    assert [t.title for t in up.cluster(name).tasks] == [
        f"create node {name}-workers-2",
        f"create node {name}-workers-3",
    ]
    nodes = sorted(c.labels["edgefleet.node"] for c in agent.containers(name))
    assert nodes == [f"{name}-main-1", *(f"{name}-workers-{i}" for i in (1, 2, 3))]
    assert agent.node_container(f"{name}-workers-1").id == first

    down = agent.apply(state(agent.appliance, cluster(name, appliance=agent.appliance, workers=1)))

    assert down.ok
    assert [t.title.split(" (")[0] for t in down.cluster(name).tasks] == [
        f"remove node {name}-workers-2",
        f"remove node {name}-workers-3",
    ]
    nodes = sorted(c.labels["edgefleet.node"] for c in agent.containers(name))
    assert nodes == [f"{name}-main-1", f"{name}-workers-1"]
    assert agent.volume_names() == agent.data_volumes(name)
    assert sorted(r.name for r in agent.records() if r.kind == "container") == sorted(
        agent.container_names(name)
    )
