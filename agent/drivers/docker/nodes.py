"""Day-2 access to a containerized cluster's nodes: commands by ``exec``, restarts, pauses, and
tool containers started beside them (:class:`DockerNodes`, the Docker side of
:mod:`agent.drivers.nodes`).

Node containers are found by the driver's labels; the containers it starts itself carry
``edgefleet.daytwo`` instead, so the applier never takes them for nodes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import docker
import requests

from agent.clocks import Clock
from agent.contract import ClusterState
from agent.drivers import NodeMissing, NodeNotRunning, TimedOut
from agent.drivers.docker.driving import APPLIANCE, CLUSTER, NODE, container_state
from agent.drivers.docker.errors import absent_is_fine, mapped
from agent.drivers.nodes import OUTPUT_LIMIT, Exec, Mount, NodeRef, Tool, ToolRun, nodes_here
from agent.naming import network_name

DAYTWO = "edgefleet.daytwo"
POLL_SECONDS = 0.2


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
        return container_state(self.client, container)

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


def _tail(data: bytes) -> bytes:
    return data[-OUTPUT_LIMIT:]
