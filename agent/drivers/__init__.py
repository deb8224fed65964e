"""What every node driver offers the agent: observe, then create and remove.

The planner reads an :class:`Observation` and builds :class:`NodeLaunch` values; the applier
calls a :class:`Driver` step by step. Drivers (``docker`` here, ``libvirt`` later) map their
own library's failures into a subclass of :class:`DriverError`, which says whether trying
again later can help (``temporary``) and which :class:`~agent.apply.passes.Reason` to report.
A driver that can tell before creating anything whether a cluster's new nodes fit the host
also offers :class:`PlacementCheck`; the applier asks it once per cluster pass::

    DriverError                 reason, temporary (class attributes)
    ├── NodeDidNotStart         temporary: a node is not running by the applier's deadline
    └── one tree per driver     e.g. agent.drivers.docker.driving.DockerError
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Protocol, runtime_checkable

from agent.contract import Mode, NodePlacement, NodeResources, Role
from agent.naming import ManifestWrite


class Reason(StrEnum):
    """Why a cluster is in Error: one value per failing boundary, never free text."""

    ENGINE_UNREACHABLE = "EngineUnreachable"
    IMAGE_MISSING = "ImageMissing"
    CONFLICT = "Conflict"
    NODE_NOT_RUNNING = "NodeNotRunning"
    ENGINE_ERROR = "EngineError"
    PLACEMENT_FAILED = "PlacementFailed"
    NO_DRIVER = "NoDriver"


class DriverError(Exception):
    """A driver could not do what it was asked; the message is one line for an operator."""

    reason: ClassVar[Reason] = Reason.ENGINE_ERROR
    temporary: ClassVar[bool] = False


class NodeDidNotStart(DriverError):
    """A node's container did not reach the running state in time."""

    reason: ClassVar[Reason] = Reason.NODE_NOT_RUNNING
    temporary: ClassVar[bool] = True


@dataclass(frozen=True)
class NodeLaunch:
    """Everything a driver needs to create one node, named by :mod:`agent.naming`."""

    appliance: str
    cluster: str
    pool: str
    node: str
    role: Role
    container: str
    volume: str
    network: str
    image: str
    spec: str
    revision: str
    digest: str
    user_data: str
    resources: NodeResources | None = None
    placement: NodePlacement | None = None
    manifests: tuple[ManifestWrite, ...] = ()
    # the node whose Kubernetes API a joining node registers with (None: this node starts
    # the cluster), and the cluster's join token
    join: str | None = None
    token: str = ""


@dataclass(frozen=True)
class NodeRemoval:
    """A node container a pass removes, in :meth:`PlacementCheck.check_placement`'s order."""

    container: str


PlacementChange = NodeLaunch | NodeRemoval


@dataclass(frozen=True)
class ObservedContainer:
    name: str
    cluster: str
    pool: str
    node: str
    role: str
    spec: str
    state: str  # the engine's word: running, exited, created, restarting, paused, dead

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class ObservedVolume:
    name: str
    cluster: str
    container: str


@dataclass(frozen=True)
class Observation:
    """What exists on this appliance, found by the agent's labels rather than by memory."""

    networks: Mapping[str, str] = field(default_factory=dict)  # name -> cluster
    containers: Mapping[str, ObservedContainer] = field(default_factory=dict)
    volumes: Mapping[str, ObservedVolume] = field(default_factory=dict)
    # control-plane container -> manifest file name -> sha256 of its content
    manifests: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def holds(self, kind: str, name: str, parent: str = "") -> bool:
        """Whether a resource the inventory speaks of (by kind and name) exists."""
        if kind == "network":
            return name in self.networks
        if kind == "container":
            return name in self.containers
        if kind == "volume":
            return name in self.volumes
        return name in self.manifests.get(parent, {})

    def clusters(self) -> set[str]:
        return (
            set(self.networks.values())
            | {c.cluster for c in self.containers.values()}
            | {v.cluster for v in self.volumes.values()}
        )


class Driver(Protocol):
    """A place where nodes run. Every call is idempotent: creating what exists or removing
    what is gone is not an error, so an interrupted step can simply be run again."""

    @property
    def mode(self) -> Mode: ...

    @property
    def default_image(self) -> str: ...

    def observe(self, *, appliance: str) -> Observation: ...

    def ensure_network(self, *, name: str, cluster: str, appliance: str) -> None: ...

    def remove_network(self, name: str) -> None: ...

    def create_node(self, launch: NodeLaunch) -> None:
        """Create the node's volume and container with its files in place, not started."""

    def start_node(self, container: str) -> None: ...

    def node_state(self, container: str) -> str | None:
        """The engine's word for the container's state, None when it does not exist."""

    def remove_node(self, *, container: str, volume: str) -> None: ...

    def remove_volume(self, name: str) -> None: ...

    def write_manifests(self, container: str, files: Sequence[ManifestWrite]) -> None: ...

    def remove_manifests(self, container: str, filenames: Sequence[str]) -> None: ...


@runtime_checkable
class PlacementCheck(Protocol):
    """A driver that checks a cluster pass's new nodes against the host before it starts."""

    def check_placement(self, changes: Sequence[PlacementChange]) -> None:
        """Raise a :class:`DriverError` naming the pool and what is missing when the nodes
        created, with the removals between them in this order, do not fit the host."""


__all__ = [
    "Driver",
    "DriverError",
    "NodeDidNotStart",
    "NodeLaunch",
    "NodeRemoval",
    "PlacementChange",
    "PlacementCheck",
    "Reason",
    "Observation",
    "ObservedContainer",
    "ObservedVolume",
]
