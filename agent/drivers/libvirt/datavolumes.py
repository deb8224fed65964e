"""A virtualized cluster's data disks for backups and restores (:class:`LibvirtVolumes`, the
libvirt side of :mod:`agent.drivers.datavolumes`).

For the copy every running node has its filesystems frozen by the guest agent, or is paused
where the agent does not answer; the disk is read through a libvirt stream, and its archive
holds one file, ``data/data.qcow2``. A restore stops the nodes and makes each disk anew with
exactly the archived bytes. The root disk is the node's image and is not backed up.
"""

from __future__ import annotations

import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import libvirt

from agent.contract import ClusterState
from agent.drivers import NodeMissing
from agent.drivers.datavolumes import ROOT, NodeVolume, Sink
from agent.drivers.libvirt.errors import Refused, classify, mapped
from agent.drivers.libvirt.guests import SILENT
from agent.drivers.libvirt.nodes import LibvirtNodes
from agent.drivers.libvirt.volumes import CHUNK, DATA, VolumeName

MEMBER = f"{ROOT}/{DATA}"  # the one file of a data volume's archive


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
                        raise classify(e, f"freeze {node.node}'s filesystems") from e
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
                raise Refused(f"{archive.name} holds no {MEMBER} to restore")
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
