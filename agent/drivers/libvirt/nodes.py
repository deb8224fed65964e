"""Day-2 access to a virtualized cluster's nodes through libvirt and the QEMU guest agent
(:class:`LibvirtNodes`, the libvirt side of :mod:`agent.drivers.nodes`).

Commands run through ``guest-exec``; a reboot goes through the guest agent and the node is back
when it answers with a new boot ID. A scan tool runs in the node's own containerd
(``k3s ctr``), pulled there if missing; a network tool runs in the first control-plane node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import libvirt

from agent.clocks import Clock
from agent.contract import ClusterState
from agent.drivers import NodeMissing, NodeNotRunning, TimedOut
from agent.drivers.libvirt.errors import GuestAgentSilent, Refused, mapped
from agent.drivers.libvirt.guests import SILENT, ExecTimedOut, Finished, GuestAgent
from agent.drivers.libvirt.observing import FoundDomain, agent_domains
from agent.drivers.nodes import OUTPUT_LIMIT, Exec, NodeRef, Tool, ToolRun, nodes_here

POLL_SECONDS = 0.5
# k3s folders a tool that reads a node sees, read-only, as a Docker tool sees the node's volumes
NODE_FOLDERS = ("/var/lib/rancher/k3s", "/etc/rancher")
# sh -c script: $1 the image, $2 the container's name, the rest the tool's argv
TOOL_RUNNER = (
    "image=$1 name=$2; shift 2; "
    'k3s ctr images ls -q | grep -qxF "$image" || k3s ctr images pull "$image" >&2 || exit 125; '
    'exec k3s ctr run --rm --net-host {options} "$image" "$name" "$@"'
)


@dataclass(frozen=True)
class GuestSettings:
    shutdown_grace: float = 120  # seconds a node has to power off before it is forced off
    start_timeout: float = 300  # seconds a started or rebooted node has to answer again


class LibvirtNodes:
    def __init__(
        self,
        *,
        connection: Any,
        appliance: str,
        clock: Clock,
        settings: GuestSettings | None = None,
    ) -> None:
        self.connection = connection
        self.appliance = appliance
        self._clock = clock
        self.settings = settings or GuestSettings()

    def network(self, cluster: str) -> str:
        """What a network tool is given to run on: the cluster, whose first control-plane
        node it runs in (a node is on the site's network)."""
        return cluster

    def addressed(self, nodes: Sequence[NodeRef]) -> tuple[NodeRef, ...]:
        """``nodes`` with the IPv4 address each guest agent reports (node names do not
        resolve on a site's network); asked only by the tools that need it."""
        return tuple(replace(n, address=self._address(n)) for n in nodes)

    def cluster_nodes(self, cluster: ClusterState) -> tuple[NodeRef, ...]:
        with mapped(f"list the domains of {cluster.name}"):
            domains = agent_domains(self.connection, appliance=self.appliance)
        by_node: dict[str, list[FoundDomain]] = {}
        for found in domains:
            if found.metadata.cluster == cluster.name:
                by_node.setdefault(found.metadata.node, []).append(found)
        refs = []
        for node in nodes_here(cluster, self.appliance):
            candidates = by_node.get(node.name)
            if not candidates:
                raise NodeMissing(f"node {node.name} has no domain on {self.appliance}")
            # during an expand-first replacement the running domain is the node
            chosen = max(candidates, key=lambda d: (d.active, d.name))
            refs.append(
                NodeRef(
                    node=node.name,
                    pool=node.pool,
                    role=node.role,
                    container=chosen.name,
                    image="",
                )
            )
        return tuple(refs)

    # -- commands --------------------------------------------------------------------------

    def run(self, node: NodeRef, command: Sequence[str], *, timeout: float) -> Exec:
        found = self._execute(node, command, timeout=timeout)
        output = (found.stdout + found.stderr)[-OUTPUT_LIMIT:]
        return Exec(found.code, output.decode(errors="replace"))

    def exists(self, node: NodeRef, path: str) -> bool:
        return self._execute(node, ["sh", "-c", 'test -e "$0"', path], timeout=30).code == 0

    def restart(self, node: NodeRef, *, timeout: float) -> None:
        """A clean reboot through the guest agent; back when it answers with a new boot ID."""
        domain = self._running(node)
        agent = GuestAgent(domain, clock=self._clock)
        with mapped(f"read the boot ID of {node.node}", node=node.node):
            before = agent.boot_id()
        with mapped(f"reboot {node.node}", node=node.node):
            domain.reboot(libvirt.VIR_DOMAIN_REBOOT_GUEST_AGENT)
        deadline = self._clock.monotonic() + timeout
        while True:
            self._clock.sleep(POLL_SECONDS)
            try:
                if agent.answers() and agent.boot_id() not in ("", before):
                    return
            except (libvirt.libvirtError, ExecTimedOut):
                pass  # going down or coming up
            if self._clock.monotonic() >= deadline:
                raise TimedOut(f"{node.node} not back from its reboot after {timeout:g}s")

    def run_tool(self, tool: Tool, *, name: str, timeout: float) -> ToolRun:
        """Run a tool container inside a node, in the node's containerd."""
        target, reads_node = self._tool_node(tool)
        options: list[str] = []
        if reads_node:
            options.append("--with-ns pid:/proc/1/ns/pid")
            options.extend(
                f"--mount type=bind,src={folder},dst={folder},options=rbind:ro"
                for folder in NODE_FOLDERS
            )
        options.extend(f"--env {key}={value}" for key, value in sorted(tool.environment.items()))
        script = TOOL_RUNNER.format(options=" ".join(options))
        argv = ["sh", "-c", script, "tool", tool.image, name, *tool.argv]
        found = self._execute(target, argv, timeout=timeout)
        if found.code == 125:
            said = found.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise Refused(f"pull {tool.image} in {target.node}: {said[0][:200]}")
        return ToolRun(
            found.code,
            found.stdout[-OUTPUT_LIMIT:].decode(errors="replace"),
            found.stderr[-OUTPUT_LIMIT:].decode(errors="replace"),
        )

    # -- whole domains ---------------------------------------------------------------------

    def domain(self, node: NodeRef) -> Any:
        with mapped(f"look up {node.node}", node=node.node):
            return self.connection.lookupByName(node.container)

    def is_running(self, node: NodeRef) -> bool:
        with mapped(f"read the state of {node.node}", node=node.node):
            state = int(self.domain(node).state()[0])
        return bool(state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED))

    def power_off(self, node: NodeRef) -> None:
        """Shut the node down cleanly, forced off when it has not after the grace time."""
        domain = self.domain(node)
        with mapped(f"shut down {node.node}", node=node.node):
            if not domain.isActive():
                return
            try:
                domain.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT)
            except libvirt.libvirtError as e:
                if e.get_error_code() not in SILENT:
                    raise
                domain.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        deadline = self._clock.monotonic() + self.settings.shutdown_grace
        with mapped(f"shut down {node.node}", node=node.node):
            while domain.isActive():
                if self._clock.monotonic() >= deadline:
                    domain.destroy()  # forced off after the grace time
                    return
                self._clock.sleep(POLL_SECONDS)

    def power_on(self, node: NodeRef) -> None:
        domain = self.domain(node)
        with mapped(f"start {node.node}", node=node.node):
            if not domain.isActive():
                domain.create()
        deadline = self._clock.monotonic() + self.settings.start_timeout
        agent = GuestAgent(domain, clock=self._clock)
        while not agent.answers():
            if self._clock.monotonic() >= deadline:
                raise GuestAgentSilent(
                    f"{node.node} started, but its guest agent has not answered for"
                    f" {self.settings.start_timeout:g}s"
                )
            self._clock.sleep(POLL_SECONDS)

    # -- internals -------------------------------------------------------------------------

    def _running(self, node: NodeRef) -> Any:
        domain = self.domain(node)
        if not self.is_running(node):
            raise NodeNotRunning(f"node {node.node} is not running")
        return domain

    def _execute(self, node: NodeRef, argv: Sequence[str], *, timeout: float) -> Finished:
        agent = GuestAgent(self._running(node), clock=self._clock)
        with mapped(f"run {argv[0]} in {node.node}", node=node.node):
            try:
                return agent.execute(argv, timeout=timeout)
            except ExecTimedOut as e:
                raise TimedOut(f"{argv[0]} in {node.node}: {e}") from e

    def _address(self, node: NodeRef) -> str:
        try:
            domain = self.connection.lookupByName(node.container)
            addresses = GuestAgent(domain, clock=self._clock).addresses()
        except libvirt.libvirtError:
            return ""  # no agent (yet): the node is known by its name
        return addresses[0] if addresses else ""

    def _tool_node(self, tool: Tool) -> tuple[NodeRef, bool]:
        """The node a tool runs in, and whether it reads that node."""
        named = [
            value.removeprefix("container:").split(":")[0]
            for value in (tool.pid_mode, tool.network_mode, *tool.volumes_from)
            if value
        ]
        with mapped("list this appliance's domains"):
            domains = agent_domains(self.connection, appliance=self.appliance)
        if named:
            found = [d for d in domains if d.name == named[0]]
        else:  # a network tool: the cluster's first running control-plane node
            found = sorted(
                (
                    d
                    for d in domains
                    if d.metadata.cluster == tool.network
                    and d.metadata.role == "control-plane"
                    and d.active
                ),
                key=lambda d: d.metadata.node,
            )
        if not found:
            wanted = named[0] if named else f"a running control-plane node of {tool.network}"
            raise NodeMissing(f"{tool.image}: no domain for {wanted} on {self.appliance}")
        ref = NodeRef(
            node=found[0].metadata.node,
            pool=found[0].metadata.pool,
            role="worker" if found[0].metadata.role == "worker" else "control-plane",
            container=found[0].name,
            image="",
        )
        return ref, tool.pid_mode is not None or bool(tool.volumes_from)
