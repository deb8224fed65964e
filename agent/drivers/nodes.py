"""What day-2 work needs from a place where nodes run: commands and reboots in a cluster's nodes
(:class:`Nodes`) and tool containers beside them (:class:`ToolHost`).

Served by :mod:`agent.drivers.docker.nodes` and :mod:`agent.drivers.libvirt.nodes`; both raise
:class:`~agent.drivers.DriverError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agent.contract import ClusterState, Node, Role

OUTPUT_LIMIT = 256 * 1024  # bytes of a command's output kept; the tail, where errors are


@dataclass(frozen=True)
class Mount:
    volume: str
    path: str  # where the node sees it


@dataclass(frozen=True)
class NodeRef:
    """One node of a cluster on this appliance and the container (or domain) it runs in."""

    node: str
    pool: str
    role: Role
    container: str
    image: str
    mounts: tuple[Mount, ...] = ()
    address: str = ""  # how other nodes reach it, when not by its name

    @property
    def reachable_as(self) -> str:
        return self.address or self.node


@dataclass(frozen=True)
class Exec:
    code: int
    output: str


@dataclass(frozen=True)
class ToolRun:
    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Tool:
    """A tool container: ``argv`` replaces the image's entrypoint and command."""

    image: str
    argv: tuple[str, ...]
    network: str | None = None  # a network to join
    network_mode: str | None = None  # e.g. container:<node>, to share a node's network
    pid_mode: str | None = None  # e.g. container:<node>, to see a node's processes
    volumes_from: tuple[str, ...] = ()  # e.g. <node>:ro, to read a node's volumes
    environment: Mapping[str, str] = field(default_factory=dict)


class Nodes(Protocol):
    def cluster_nodes(self, cluster: ClusterState) -> tuple[NodeRef, ...]:
        """The cluster's nodes on this appliance in pool order, control plane first."""

    def run(self, node: NodeRef, command: Sequence[str], *, timeout: float) -> Exec: ...

    def exists(self, node: NodeRef, path: str) -> bool: ...

    def restart(self, node: NodeRef, *, timeout: float) -> None: ...


class ToolHost(Protocol):
    def cluster_nodes(self, cluster: ClusterState) -> tuple[NodeRef, ...]: ...

    def network(self, cluster: str) -> str: ...

    def addressed(self, nodes: Sequence[NodeRef]) -> tuple[NodeRef, ...]: ...

    def run_tool(self, tool: Tool, *, name: str, timeout: float) -> ToolRun: ...


class Host(Nodes, ToolHost, Protocol):
    """Where a cluster's nodes run, for every kind of day-2 run."""


def nodes_here(cluster: ClusterState, appliance: str) -> list[Node]:
    """The cluster's nodes on ``appliance`` in pool order, control-plane pools first."""
    pools = sorted(cluster.pools, key=lambda pool: not pool.controlPlane)
    order = {pool.name: i for i, pool in enumerate(pools)}
    here = (n for n in cluster.nodes if n.appliance == appliance)
    return sorted(here, key=lambda n: order.get(n.pool, len(order)))
