"""The steps of a plan: what the applier asks a driver to do, one journal entry each, with
the inventory records each one makes or removes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.apply.inventory import Record
from agent.drivers import NodeLaunch
from agent.naming import ManifestWrite

CreateReason = Literal["new", "drift", "replace", "restart"]
RemoveReason = Literal["replaced", "scale-down", "cluster-removed"]


@dataclass(frozen=True)
class EnsureNetwork:
    cluster: str
    network: str
    drift: bool = False
    action = "ensure-network"
    removes = False

    @property
    def title(self) -> str:
        return f"create network {self.network}"

    def records(self) -> tuple[Record, ...]:
        return (Record("network", self.network, self.cluster),)


@dataclass(frozen=True)
class CreateNode:
    cluster: str
    launch: NodeLaunch
    reason: CreateReason
    replaces: tuple[str, ...] = ()
    action = "create-node"
    removes = False

    @property
    def title(self) -> str:
        verb = {"replace": "replace", "restart": "restart"}.get(self.reason, "create")
        return f"{verb} node {self.launch.node}"

    def records(self) -> tuple[Record, ...]:
        launch = self.launch
        node = Record(
            "container", launch.container, self.cluster, pool=launch.pool, node=launch.node
        )
        volumes = tuple(
            Record("volume", name, self.cluster, pool=launch.pool, node=launch.node)
            for name in (launch.volume, launch.root)
            if name
        )
        files = tuple(
            Record("manifest", f.filename, self.cluster, parent=launch.container)
            for f in launch.manifests
        )
        return (node, *volumes, *files)


@dataclass(frozen=True)
class StartNode:
    cluster: str
    node: str
    container: str
    drift: bool
    action = "start-node"
    removes = False

    @property
    def title(self) -> str:
        return f"start node {self.node}"

    def records(self) -> tuple[Record, ...]:
        return (Record("container", self.container, self.cluster, node=self.node),)


@dataclass(frozen=True)
class RemoveNode:
    """Remove a node's container (domain) and ``volumes``: a node restarted on its data
    keeps its volumes (none named)."""

    cluster: str
    node: str
    pool: str
    container: str
    volumes: tuple[str, ...]
    reason: RemoveReason
    files: tuple[str, ...] = ()
    action = "remove-node"
    removes = True

    @property
    def title(self) -> str:
        return f"remove node {self.node} ({self.container})"

    def records(self) -> tuple[Record, ...]:
        node = Record("container", self.container, self.cluster, pool=self.pool, node=self.node)
        volumes = tuple(
            Record("volume", name, self.cluster, pool=self.pool, node=self.node)
            for name in self.volumes
        )
        files = tuple(
            Record("manifest", name, self.cluster, parent=self.container) for name in self.files
        )
        return (node, *volumes, *files)


@dataclass(frozen=True)
class WriteManifests:
    cluster: str
    node: str
    container: str
    files: tuple[ManifestWrite, ...]
    drift: tuple[str, ...] = ()  # files the agent wrote before that were changed or removed
    action = "write-manifests"
    removes = False

    @property
    def title(self) -> str:
        return f"write {len(self.files)} manifests to {self.node}"

    def records(self) -> tuple[Record, ...]:
        return tuple(
            Record("manifest", f.filename, self.cluster, parent=self.container) for f in self.files
        )


@dataclass(frozen=True)
class RemoveManifests:
    cluster: str
    node: str
    container: str
    filenames: tuple[str, ...]
    action = "remove-manifests"
    removes = True

    @property
    def title(self) -> str:
        return f"remove {len(self.filenames)} stale manifests from {self.node}"

    def records(self) -> tuple[Record, ...]:
        return tuple(
            Record("manifest", name, self.cluster, parent=self.container) for name in self.filenames
        )


@dataclass(frozen=True)
class RemoveVolume:
    cluster: str
    volume: str
    action = "remove-volume"
    removes = True

    @property
    def title(self) -> str:
        return f"remove volume {self.volume}"

    def records(self) -> tuple[Record, ...]:
        return (Record("volume", self.volume, self.cluster),)


@dataclass(frozen=True)
class RemoveNetwork:
    cluster: str
    network: str
    action = "remove-network"
    removes = True

    @property
    def title(self) -> str:
        return f"remove network {self.network}"

    def records(self) -> tuple[Record, ...]:
        return (Record("network", self.network, self.cluster),)


Step = (
    EnsureNetwork
    | CreateNode
    | StartNode
    | RemoveNode
    | WriteManifests
    | RemoveManifests
    | RemoveVolume
    | RemoveNetwork
)
