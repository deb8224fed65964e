"""What backups and restores need from a place where nodes run: a cluster's data volumes, copied
out while writes are held and written back while the nodes are stopped (:class:`Volumes`).

Served by :mod:`agent.drivers.docker.datavolumes` and :mod:`agent.drivers.libvirt.datavolumes`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.contract import ClusterState, Role

ROOT = "data"  # the folder every archive holds the volume's content under


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class NodeVolume:
    node: str
    pool: str
    role: Role
    volume: str
    path: str  # where the node mounts it


class Volumes(Protocol):
    def node_volumes(self, cluster: ClusterState) -> tuple[NodeVolume, ...]:
        """The cluster's data volumes on this appliance, control-plane nodes first."""

    def quiesced(self, cluster: ClusterState) -> AbstractContextManager[str]:
        """Writes to the cluster's volumes held while the block runs; yields how, for the
        backup's manifest."""

    def export(self, volume: NodeVolume, out: Sink) -> None:
        """The volume's content as a tar stream, entries under ``data/``."""

    def stopped(self, cluster: ClusterState) -> AbstractContextManager[None]:
        """The cluster's nodes stopped while the block runs, then started and running."""

    def replace(self, volume: NodeVolume, archive: Path) -> None:
        """The volume's content replaced by a tar (plain or gzip), entries under ``data/``."""
