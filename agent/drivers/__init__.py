"""What a node driver offers the agent: observe, create and remove nodes (:class:`Driver`),
and, in :mod:`agent.drivers.nodes` and :mod:`agent.drivers.datavolumes`, reach into them for
day-2 work. Each driver maps its library's errors into its own tree below :class:`DriverError`::

    DriverError            reason and temporary (may trying again later help?) for the pass
    ├── NodeDidNotStart    temporary   a node is not running by the applier's deadline
    ├── NodeNotRunning     temporary   a node must be running for this and is not
    ├── NodeMissing                    a node of the desired state has nothing on this appliance
    ├── TimedOut                       a command or a tool in a node outlived its time
    ├── DockerError        agent.drivers.docker.errors
    └── LibvirtError       agent.drivers.libvirt.errors
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

from agent.contract import Mode, NodePlacement, NodeResources, NodeSetup, Role
from agent.errors import AgentError
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


class DriverError(AgentError):
    """A driver could not do what it was asked. A subclass names its ``reason`` and whether
    it is ``temporary`` as class keywords: ``class Gone(DriverError, temporary=True)``."""

    reason: ClassVar[Reason] = Reason.ENGINE_ERROR
    temporary: ClassVar[bool] = False

    def __init_subclass__(
        cls, *, reason: Reason | None = None, temporary: bool | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if reason is not None:
            cls.reason = reason
        if temporary is not None:
            cls.temporary = temporary


class NodeDidNotStart(DriverError, reason=Reason.NODE_NOT_RUNNING, temporary=True): ...


class NodeNotRunning(DriverError, reason=Reason.NODE_NOT_RUNNING, temporary=True): ...


class NodeMissing(DriverError): ...


class TimedOut(DriverError): ...


@dataclass(frozen=True)
class NodeLaunch:
    """Everything a driver needs to create one node, named by :mod:`agent.naming`. ``volume``
    is the node's data volume and ``root`` a virtual machine's root disk: both are used again
    when they exist (a node restarted on its data)."""

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
    # what the node must read (its k3s files, CA certificates, environment, labels)
    setup: NodeSetup = NodeSetup()
    root: str | None = None
    join: Join | None = None


@dataclass(frozen=True)
class Join:
    """How a node joins its cluster: the token every node shares, and either the URL of an
    existing server (``server``) or, for the first server of a cluster not formed yet, to
    start the cluster (``init``). A node of a cluster that spans appliances runs in its
    appliance's network (``host_network``) with the appliance's address (``node_ip``)."""

    token: str = field(repr=False)
    server: str | None = None
    init: bool = False
    host_network: bool = False
    node_ip: str | None = None

    def config(self, *, role: Role) -> str:
        """The k3s configuration drop-in (``config.yaml.d/10-join.yaml``) that says so."""
        lines = ["# written by the edgefleet agent: how this node joins its cluster"]
        lines.append(f"token: {_quoted(self.token)}")
        if self.init and role == "control-plane":
            lines.append("cluster-init: true")
        elif self.server:
            lines.append(f"server: {_quoted(self.server)}")
        if self.node_ip:
            lines.append(f"node-ip: {_quoted(self.node_ip)}")
            if role == "control-plane":
                lines.append(f"advertise-address: {_quoted(self.node_ip)}")
        return "\n".join(lines) + "\n"

    def environment(self, *, role: Role) -> dict[str, str]:
        """The same as the k3s environment variables a node container gets."""
        found = {"K3S_TOKEN": self.token}
        if self.init and role == "control-plane":
            found["K3S_CLUSTER_INIT"] = "true"
        elif self.server:
            found["K3S_URL"] = self.server
        return found


def _quoted(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML scalar


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
    volumes: tuple[str, ...] = ()  # the (logical) volumes it uses

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class ObservedVolume:
    name: str
    cluster: str
    container: str  # the container it was made with (volumes made before they outlived it)
    node: str = ""


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

    def remove_node(self, *, container: str, volumes: Sequence[str] = ()) -> None:
        """Remove the node's container (domain) and the volumes named; others it used stay."""

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
    "NodeMissing",
    "NodeNotRunning",
    "TimedOut",
    "Join",
    "NodeLaunch",
    "NodeRemoval",
    "PlacementChange",
    "PlacementCheck",
    "Reason",
    "Observation",
    "ObservedContainer",
    "ObservedVolume",
]
