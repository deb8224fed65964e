"""A cluster's nodes as day-2 work sees them: commands run in them, restarts, pauses, and tool
containers started next to them.

:class:`Nodes` is what patching, scans and backups need from a place where nodes run;
:class:`DockerNodes` is its Docker side, for containerized clusters, built by the CLI around
the same ``docker.DockerClient`` the driver gets. It finds node containers by the driver's
labels (it reads them, it never changes the driver) and gives the containers it starts itself
(tools, helpers) the label ``edgefleet.daytwo`` and not the driver's, so the applier never
takes them for nodes. A virtualized cluster gets its own implementation against the same protocol
(:class:`agent.drivers.libvirt.nodes.LibvirtNodes`: commands through the QEMU guest agent,
reboots through libvirt). Docker's and requests' errors are mapped
here, with ``raise ... from e``::

    NodeError
    ├── EngineUnreachable    the engine does not answer
    ├── NodeMissing          a node of the desired state has no container on this appliance
    ├── NodeNotRunning       the node must be running for this and is not
    ├── TimedOut             a command or a tool outlived its time
    ├── GuestAgentSilent     a virtual node's guest agent does not answer
    └── EngineRefused        the engine refused or failed the request (image missing, ...)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from agent.clocks import Clock
from agent.contract import ClusterState, Node, Role
from agent.drivers.docker.driving import APPLIANCE, CLUSTER, NODE, absent_is_fine
from agent.naming import network_name

DAYTWO = "edgefleet.daytwo"
OUTPUT_LIMIT = 256 * 1024  # bytes of a command's output kept; the tail, where errors are
POLL_SECONDS = 0.2


class NodeError(Exception):
    """A node could not be reached or used; the message is one line for an operator."""


class EngineUnreachable(NodeError):
    pass


class NodeMissing(NodeError):
    pass


class NodeNotRunning(NodeError):
    pass


class TimedOut(NodeError):
    pass


class GuestAgentSilent(NodeError):
    pass


class EngineRefused(NodeError):
    pass


@dataclass(frozen=True)
class Mount:
    volume: str
    path: str  # where the node sees it


@dataclass(frozen=True)
class NodeRef:
    """One node of a cluster on this appliance and the container it runs in."""

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


class DockerNodes:
    def __init__(
        self,
        *,
        client: docker.DockerClient,
        appliance: str,
        clock: Clock,
        labels: Mapping[str, str] | None = None,
        stop_timeout: int = 60,
    ) -> None:
        self.client = client
        self._stop_timeout = stop_timeout  # seconds a node has to stop before it is killed
        self.appliance = appliance
        self._clock = clock
        self._labels = {DAYTWO: appliance, **(labels or {})}

    @property
    def labels(self) -> dict[str, str]:
        """Labels for the containers day-2 work starts (tools, helpers)."""
        return dict(self._labels)

    def network(self, cluster: str) -> str:
        return network_name(cluster)

    def cluster_nodes(self, cluster: ClusterState) -> tuple[NodeRef, ...]:
        selector = {"label": [f"{APPLIANCE}={self.appliance}", f"{CLUSTER}={cluster.name}"]}
        with mapped(f"list nodes of {cluster.name}"):
            found = self.client.api.containers(all=True, filters=selector)
        by_node: dict[str, list[dict[str, Any]]] = {}
        for item in found:
            by_node.setdefault((item.get("Labels") or {}).get(NODE, ""), []).append(item)
        refs = []
        for node in nodes_here(cluster, self.appliance):
            candidates = by_node.get(node.name)
            if not candidates:
                raise NodeMissing(f"node {node.name} has no container on {self.appliance}")
            # during an expand-first replacement the running, newest container is the node
            chosen = max(candidates, key=lambda c: (c.get("State") == "running", c["Created"]))
            refs.append(
                NodeRef(
                    node=node.name,
                    pool=node.pool,
                    role=node.role,
                    container=chosen["Names"][0].lstrip("/"),
                    image=str(chosen["Image"]),
                    mounts=tuple(
                        Mount(volume=m["Name"], path=m["Destination"])
                        for m in chosen.get("Mounts") or []
                        if m.get("Type") == "volume"
                    ),
                )
            )
        return tuple(refs)

    def addressed(self, nodes: Sequence[NodeRef]) -> tuple[NodeRef, ...]:
        """``nodes`` as tools reach them: by name, on the cluster's network."""
        return tuple(nodes)

    def state(self, container: str) -> str | None:
        with mapped(f"inspect {container}"):
            try:
                return str(self.client.api.inspect_container(container)["State"]["Status"])
            except NotFound:
                return None

    # -- commands --------------------------------------------------------------------------

    def run(self, node: NodeRef, command: Sequence[str], *, timeout: float) -> Exec:
        """Run ``command`` in the node; its output goes to a file there, so a long, quiet
        command (a package upgrade) is waited for without holding a connection open."""
        self._require_running(node)
        log = f"/tmp/edgefleet-{uuid.uuid4().hex[:12]}.log"
        wrapped = ["sh", "-c", 'mkdir -p /tmp && exec >"$0" 2>&1 && exec "$@"', log, *command]
        api = self.client.api
        with mapped(f"run {command[0]} in {node.node}"):
            exec_id = str(api.exec_create(node.container, wrapped)["Id"])
            api.exec_start(exec_id, detach=True)
            deadline = self._clock.monotonic() + timeout
            while (found := api.exec_inspect(exec_id))["Running"] or found["ExitCode"] is None:
                if self._clock.monotonic() >= deadline:
                    raise TimedOut(f"{command[0]} in {node.node} still running after {timeout:g}s")
                self._clock.sleep(POLL_SECONDS)
            # read back in the node (its /tmp may be a tmpfs the archive API does not see)
            read = ["sh", "-c", f'tail -c {OUTPUT_LIMIT} "$0"; rm -f "$0"', log]
            output = api.exec_start(str(api.exec_create(node.container, read)["Id"]))
        return Exec(int(found["ExitCode"]), output.decode(errors="replace"))

    def exists(self, node: NodeRef, path: str) -> bool:
        # asked inside the node: the engine's archive API does not see tmpfs mounts (/var/run)
        self._require_running(node)
        api = self.client.api
        with mapped(f"look for {path} in {node.node}"):
            exec_id = str(api.exec_create(node.container, ["sh", "-c", 'test -e "$0"', path])["Id"])
            api.exec_start(exec_id)
            return int(api.exec_inspect(exec_id)["ExitCode"]) == 0

    def restart(self, node: NodeRef, *, timeout: float) -> None:
        """A container node's reboot: stopped and started, /run and /var/run emptied."""
        with mapped(f"restart {node.node}"):
            self.client.api.restart(node.container, timeout=self._stop_timeout)
        self.wait_running(node.container, timeout=timeout)

    def wait_running(self, container: str, *, timeout: float) -> None:
        deadline = self._clock.monotonic() + timeout
        while (state := self.state(container)) != "running":
            if state is None or self._clock.monotonic() >= deadline:
                raise NodeNotRunning(f"{container} is {state or 'gone'}, not running")
            self._clock.sleep(POLL_SECONDS)

    # -- whole clusters --------------------------------------------------------------------

    @contextmanager
    def paused(self, nodes: Sequence[NodeRef]) -> Iterator[None]:
        """All ``nodes`` frozen together, so what is read meanwhile is one instant."""
        done: list[NodeRef] = []
        try:
            for node in nodes:
                self._require_running(node)
                with mapped(f"pause {node.node}"):
                    self.client.api.pause(node.container)
                done.append(node)
            yield
        finally:
            for node in reversed(done):
                with mapped(f"unpause {node.node}"):
                    self.client.api.unpause(node.container)

    @contextmanager
    def stopped(self, nodes: Sequence[NodeRef], *, timeout: float) -> Iterator[None]:
        """``nodes`` stopped (workers first), then started again (control plane first)."""
        try:
            for node in reversed(nodes):
                with mapped(f"stop {node.node}"):
                    self.client.api.stop(node.container, timeout=self._stop_timeout)
            yield
        finally:
            for node in nodes:
                with mapped(f"start {node.node}"):
                    self.client.api.start(node.container)
            for node in nodes:
                self.wait_running(node.container, timeout=timeout)

    # -- tool containers -------------------------------------------------------------------

    def run_tool(self, tool: Tool, *, name: str, timeout: float) -> ToolRun:
        """Run a tool container to its end and return its exit code and output."""
        options: dict[str, Any] = {
            "entrypoint": [tool.argv[0]],
            "command": list(tool.argv[1:]),
            "name": f"{name}-{uuid.uuid4().hex[:6]}",
            "labels": self.labels,
            "environment": dict(tool.environment),
        }
        if tool.network is not None:
            options["network"] = tool.network
        if tool.network_mode is not None:
            options["network_mode"] = tool.network_mode
        if tool.pid_mode is not None:
            options["pid_mode"] = tool.pid_mode
        if tool.volumes_from:
            options["volumes_from"] = list(tool.volumes_from)
        with mapped(f"create {tool.image} container"):
            container = self.client.containers.create(tool.image, **options)
        try:
            with mapped(f"run {tool.image}"):
                container.start()
            with mapped(f"wait for {tool.image}"):
                try:
                    status = container.wait(timeout=timeout)
                except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as e:
                    self.state(str(container.id))  # raises EngineUnreachable if that is why
                    raise TimedOut(f"{tool.image} still running after {timeout:g}s") from e
                stdout = container.logs(stdout=True, stderr=False)
                stderr = container.logs(stdout=False, stderr=True)
        finally:
            with mapped(f"remove {tool.image} container"), absent_is_fine():
                container.remove(force=True)
        return ToolRun(
            int(status.get("StatusCode", -1)),
            _tail(stdout).decode(errors="replace"),
            _tail(stderr).decode(errors="replace"),
        )

    # -- internals -------------------------------------------------------------------------

    def _require_running(self, node: NodeRef) -> None:
        state = self.state(node.container)
        if state != "running":
            raise NodeNotRunning(f"node {node.node} is {state or 'gone'}, not running")


def nodes_here(cluster: ClusterState, appliance: str) -> list[Node]:
    """The cluster's nodes on ``appliance`` in pool order, control-plane pools first."""
    pools = sorted(cluster.pools, key=lambda pool: not pool.controlPlane)
    order = {pool.name: i for i, pool in enumerate(pools)}
    here = (n for n in cluster.nodes if n.appliance == appliance)
    return sorted(here, key=lambda n: order.get(n.pool, len(order)))


def _tail(data: bytes) -> bytes:
    return data[-OUTPUT_LIMIT:]


@contextmanager
def mapped(what: str) -> Iterator[None]:
    """Docker's and requests' errors as :class:`NodeError`, with the action in the message."""
    try:
        yield
    except NodeError:
        raise
    except ImageNotFound as e:
        raise EngineRefused(f"{what}: image not found: {explain(e)}") from e
    except NotFound as e:
        raise NodeMissing(f"{what}: {explain(e)}") from e
    except APIError as e:
        raise EngineRefused(f"{what}: {explain(e)}") from e
    except (requests.RequestException, DockerException) as e:
        raise EngineUnreachable(f"{what}: docker engine unreachable: {e}") from e


def explain(error: APIError) -> str:
    return (error.explanation or str(error)).strip().splitlines()[0][:300]
