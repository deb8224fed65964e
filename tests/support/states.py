"""Small hand-written DesiredStates for the agent tests, sealed with ``agent.contract.seal``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from agent.contract import ClusterState, DesiredState, ManifestFile, Node, Pool, seal

Strategy = Literal["expand-first", "contract-first"]


def manifests(*names: str, pack: str = "demo") -> list[ManifestFile]:
    return [
        ManifestFile(
            layer="addon",
            pack=pack,
            name=name,
            content=f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name.split('.')[0]}\n",
        )
        for name in names
    ]


def secret_manifest(sealed: str, name: str = "pos-token.yaml") -> ManifestFile:
    """A SOPS document as the reconciler passes it through: sealed, for the agent to open."""
    return ManifestFile(layer="addon", pack="secrets", name=name, content=sealed, encryption="sops")


def cluster(
    name: str,
    *,
    appliance: str,
    workers: int = 1,
    strategy: Strategy = "expand-first",
    worker_strategy: Strategy = "contract-first",
    files: Sequence[ManifestFile] | None = None,
    image: str | None = None,
    user_data: str = "",
    phase: Literal["present", "absent"] = "present",
) -> ClusterState:
    """A control-plane pool of one node plus a worker pool of ``workers`` nodes."""

    def node(pool: str, index: int, role: Literal["control-plane", "worker"]) -> Node:
        node_name = f"{name}-{pool}-{index}"
        return Node(
            name=node_name,
            pool=pool,
            role=role,
            appliance=appliance,
            workerCapable=True,
            image=image,
            userData=f"#cloud-config\nhostname: {node_name}\n{user_data}",
        )

    # the worker pool is listed first on purpose: the agent must still start with the
    # control-plane pool
    return ClusterState(
        name=name,
        mode="containerized",
        phase=phase,
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


def state(appliance: str, *clusters: ClusterState, revision: str = "rev-1") -> DesiredState:
    return seal(appliance=appliance, site="test-site", revision=revision, clusters=list(clusters))
