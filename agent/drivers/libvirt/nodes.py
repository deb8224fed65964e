"""Day-2 work on virtualized clusters: the :class:`agent.drivers.docker.nodes.Nodes` and
:class:`agent.drivers.docker.datavolumes.Volumes` of libvirt, beside the Docker ones.

Built by :mod:`agent.wiring` around the driver's own libvirt connection. Nodes are the
agent's domains, found by their ``<edgefleet:node>`` metadata as the driver finds them.

:class:`LibvirtNodes` reaches into a node through the QEMU guest agent
(:mod:`agent.drivers.libvirt.guests`): commands, files, the boot ID. A reboot goes through
the guest agent (the guest shuts down cleanly and comes back), and the node counts as back
when its guest agent answers with a new boot ID. A scan tool runs inside a node, in the
node's own container runtime (k3s's containerd, ``k3s ctr``): the image is pulled there if
it is missing, and the container shares the node's network; for a tool that reads a node,
also its process namespace and its k3s folders, read-only. kube-hunter, which hunts the
nodes from the site's network, runs in the first control-plane node and is given the nodes'
addresses as their guest agents report them.

:class:`LibvirtVolumes` backs up and restores the nodes' data disks (``data.qcow2`` in the
data pool; the node's root disk is its image and is made again from it). For the copy every
running node of the cluster has its filesystems frozen by the guest agent
(``virDomainFSFreeze``), or is paused where its guest agent does not answer; the volume is
read through a libvirt stream, so this works the same over qemu+ssh. Each volume's archive
holds one file, ``data/data.qcow2``: the volume's bytes. A restore stops the nodes (through
the guest agent, forced off after a grace time), makes each volume anew with exactly the
archived bytes, and starts them again.

libvirt's and the guest agent's errors are :class:`~agent.drivers.docker.nodes.NodeError`, each
naming the node and the action. """

from __future__ import annotations

import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import libvirt

from agent.clocks import Clock
from agent.contract import ClusterState
from agent.drivers.docker.datavolumes import ROOT, NodeVolume, Sink
from agent.drivers.docker.nodes import (
    OUTPUT_LIMIT,
    EngineRefused,
    EngineUnreachable,
    Exec,
    GuestAgentSilent,
    NodeError,
    NodeMissing,
    NodeNotRunning,
    NodeRef,
    TimedOut,
    Tool,
    ToolRun,
    nodes_here,
)
from agent.drivers.libvirt.errors import explain, is_absent
from agent.drivers.libvirt.guests import SILENT, ExecTimedOut, Finished, GuestAgent
from agent.drivers.libvirt.observing import FoundDomain, agent_domains
from agent.drivers.libvirt.volumes import CHUNK, DATA, VolumeName

POLL_SECONDS = 0.5
MEMBER = f"{ROOT}/{DATA}"  # the one file of a data volume's archive
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
            raise EngineRefused(f"pull {tool.image} in {target.node}: {said[0][:200]}")
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


class LibvirtVolumes:
    def __init__(self, *, nodes: LibvirtNodes, spool_dir: Path) -> None:
        self._nodes = nodes
        self._connection = nodes.connection
        self._spool_dir = spool_dir
        self._pools: dict[str, str] = {}  # volume -> its storage pool

    def node_volumes(self, cluster: ClusterState) -> tuple[NodeVolume, ...]:
        found = []
        for node in self._nodes.cluster_nodes(cluster):
            domain = self._nodes.domain(node)
            with mapped(f"read the disks of {node.node}", node=node.node):
                root = ET.fromstring(domain.XMLDesc(0))
            for disk in root.findall("devices/disk[@type='volume']"):
                source, target = disk.find("source"), disk.find("target")
                if source is None or target is None:
                    continue
                name = VolumeName.parse(source.get("volume", ""))
                if name is None or name.kind != DATA:
                    continue
                self._pools[str(name)] = source.get("pool", "")
                path = f"/dev/{target.get('dev', '')}"
                found.append(NodeVolume(node.node, node.pool, node.role, str(name), path))
        return tuple(found)

    @contextmanager
    def quiesced(self, cluster: ClusterState) -> Iterator[str]:
        """Every running node's filesystems frozen by its guest agent, or the node paused
        where the agent does not answer; thawed and resumed whatever happens."""
        frozen, paused = [], []
        with ExitStack() as undo:
            for node in self._nodes.cluster_nodes(cluster):
                if not self._nodes.is_running(node):
                    continue
                domain = self._nodes.domain(node)
                try:
                    domain.fsFreeze(None, 0)
                    undo.callback(_thaw, domain)
                    frozen.append(node.node)
                except libvirt.libvirtError as e:
                    if e.get_error_code() not in SILENT:
                        raise NodeError(f"freeze {node.node}'s filesystems: {explain(e)}") from e
                    with mapped(f"pause {node.node}", node=node.node):
                        domain.suspend()
                    undo.callback(_resume, domain)
                    paused.append(node.node)
            how = []
            if frozen:
                how.append(f"filesystems frozen by the guest agent on {', '.join(frozen)}")
            if paused:
                how.append(f"paused (no guest agent answer) {', '.join(paused)}")
            yield "consistent: " + ("; ".join(how) or "every node was stopped")

    @contextmanager
    def stopped(self, cluster: ClusterState) -> Iterator[None]:
        nodes = self._nodes.cluster_nodes(cluster)
        try:
            for node in reversed(nodes):
                self._nodes.power_off(node)
            yield
        finally:
            for node in nodes:
                self._nodes.power_on(node)

    def export(self, volume: NodeVolume, out: Sink) -> None:
        handle = self._volume(volume)
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self._spool_dir) as spool:
            stream = self._connection.newStream(0)
            with mapped(f"read volume {volume.volume}", stream=stream):
                handle.download(stream, 0, 0, 0)
                while chunk := stream.recv(CHUNK):
                    spool.write(chunk)
                stream.finish()
            # one member, written by hand: its size is known only once the stream has ended
            member = tarfile.TarInfo(MEMBER)
            member.size = spool.tell()
            member.mode = 0o600
            spool.seek(0)
            out.write(member.tobuf(format=tarfile.PAX_FORMAT))
            while chunk := spool.read(CHUNK):
                out.write(chunk)
            out.write(b"\0" * (-member.size % tarfile.BLOCKSIZE) + b"\0" * 2 * tarfile.BLOCKSIZE)

    def replace(self, volume: NodeVolume, archive: Path) -> None:
        """The volume made anew holding exactly the archived bytes."""
        handle = self._volume(volume)
        with tarfile.open(archive, mode="r:*") as tar:
            member = next((m for m in tar if m.name == MEMBER and m.isfile()), None)
            data = None if member is None else tar.extractfile(member)
            if member is None or data is None:
                raise EngineRefused(f"{archive.name} holds no {MEMBER} to restore")
            with mapped(f"make volume {volume.volume} anew"):
                pool = self._connection.storagePoolLookupByName(self._pools[volume.volume])
                xml = _empty_like(handle.XMLDesc(0))
                handle.delete(0)
                handle = pool.createXML(xml, 0)
            stream = self._connection.newStream(0)
            with mapped(f"write volume {volume.volume}", stream=stream):
                handle.upload(stream, 0, member.size, 0)
                while chunk := data.read(CHUNK):
                    stream.send(chunk)
                stream.finish()
            with mapped(f"refresh storage pool {pool.name()}"):
                pool.refresh(0)

    def _volume(self, volume: NodeVolume) -> Any:
        pool = self._pools.get(volume.volume)
        if pool is None:
            raise NodeMissing(f"volume {volume.volume} is not a data volume of this appliance")
        with mapped(f"look up volume {volume.volume}"):
            return self._connection.storagePoolLookupByName(pool).storageVolLookupByName(
                volume.volume
            )


def _empty_like(xml: str) -> str:
    """A volume's XML for a new, empty file of the same name and permissions; its format
    is probed from the bytes written into it."""
    root = ET.fromstring(xml)
    kept = ET.Element("volume", {"type": "file"})
    ET.SubElement(kept, "name").text = root.findtext("name")
    ET.SubElement(kept, "capacity", {"unit": "bytes"}).text = "0"
    ET.SubElement(kept, "allocation", {"unit": "bytes"}).text = "0"
    target = ET.SubElement(kept, "target")
    ET.SubElement(target, "format", {"type": "raw"})
    permissions = root.find("target/permissions")
    if permissions is not None:
        target.append(permissions)
    return ET.tostring(kept, encoding="unicode")


def _thaw(domain: Any) -> None:
    with mapped(f"thaw {domain.name()}'s filesystems"):
        domain.fsThaw(None, 0)


def _resume(domain: Any) -> None:
    with mapped(f"resume {domain.name()}"):
        domain.resume()


@contextmanager
def mapped(what: str, *, node: str | None = None, stream: Any = None) -> Iterator[None]:
    """libvirt's errors as :class:`~agent.drivers.docker.nodes.NodeError`, with the action in
    the message; a failed stream is aborted."""
    try:
        yield
    except libvirt.libvirtError as e:
        if stream is not None:
            _abort(stream)
        code = e.get_error_code()
        if code in (libvirt.VIR_ERR_AGENT_UNRESPONSIVE, libvirt.VIR_ERR_AGENT_UNSYNCED):
            raise GuestAgentSilent(
                f"{what}: the guest agent of {node or 'the node'} does not answer"
                " (is qemu-guest-agent running in the node?)"
            ) from e
        if is_absent(e):
            raise NodeMissing(f"{what}: {explain(e)}") from e
        if code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC):
            raise EngineUnreachable(f"{what}: libvirt unreachable: {explain(e)}") from e
        raise EngineRefused(f"{what}: {explain(e)}") from e
    except BaseException:
        if stream is not None:
            _abort(stream)
        raise


def _abort(stream: Any) -> None:
    try:
        stream.abort()
    except libvirt.libvirtError:
        pass  # broken already: the original error says why
