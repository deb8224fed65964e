"""Small hand-written virtualized DesiredStates for the libvirt tests, sealed with
``agent.contract.seal``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from agent.contract import ClusterState, ManifestFile, Node, NodePlacement, NodeResources, Pool
from tests.support.states import Strategy, manifests, state

__all__ = ["manifests", "placement", "resources", "state", "vm_cluster"]


def resources(**changes: Any) -> NodeResources:
    values: dict[str, Any] = {"cpu": 1, "memoryGiB": 1, "rootDiskGiB": 4}
    values.update(changes)
    return NodeResources(**values)


def placement(**changes: Any) -> NodePlacement:
    values: dict[str, Any] = {
        "networkType": "default",
        "networks": ["default"],
        "imageStoragePool": "vms",
        "targetStoragePool": "vms",
    }
    values.update(changes)
    return NodePlacement(**values)


def vm_cluster(
    name: str,
    *,
    appliance: str,
    workers: int = 1,
    strategy: Strategy = "expand-first",
    worker_strategy: Strategy = "contract-first",
    files: Sequence[ManifestFile] | None = None,
    image: str | None = "base.qcow2",
    user_data: str = "",
    phase: Literal["present", "absent"] = "present",
    control: tuple[NodeResources, NodePlacement] | None = None,
    worker: tuple[NodeResources, NodePlacement] | None = None,
) -> ClusterState:
    """A control-plane pool of one node (pinned, on a libvirt network) plus a worker pool of
    ``workers`` nodes (with a data disk, on a bridge)."""
    control = control or (resources(cpuSet="0"), placement())
    worker = worker or (
        resources(dataDiskGiB=8),
        placement(networkType="bridge", networks=["br-test"], dataStoragePool="data"),
    )

    def node(pool: str, index: int, role: Literal["control-plane", "worker"]) -> Node:
        node_name = f"{name}-{pool}-{index}"
        chosen = control if role == "control-plane" else worker
        return Node(
            name=node_name,
            pool=pool,
            role=role,
            appliance=appliance,
            workerCapable=True,
            image=image,
            resources=chosen[0],
            placement=chosen[1],
            userData=f"#cloud-config\nhostname: {node_name}\n{user_data}",
        )

    return ClusterState(
        name=name,
        mode="virtualized",
        phase=phase,
        vip="192.0.2.10",
        packs=[],
        pools=[
            Pool(name="workers", controlPlane=False, size=workers, updateStrategy=worker_strategy),
            Pool(name="main", controlPlane=True, size=1, updateStrategy=strategy),
        ],
        nodes=[node("workers", i, "worker") for i in range(1, workers + 1)]
        + [node("main", 1, "control-plane")],
        manifests=list(files if files is not None else manifests("a.yaml", "b.yaml")),
        schedules=[],
        timezone="UTC",
    )
