"""The agent as the libvirt tests drive it: apply states through the libvirt driver, then
look at what exists through libvirt itself (and, on the real daemon, ``virsh``)."""

from __future__ import annotations

import re
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import libvirt

from agent.apply.applying import apply_state
from agent.apply.inventory import Inventory, Record
from agent.apply.passes import ApplyResult, Progress
from agent.clocks import SystemClock
from agent.config import AGE_KEY_NAME
from agent.contract import DesiredState
from agent.drivers.libvirt import LibvirtDriver, LibvirtSettings, VolumeContents
from agent.drivers.libvirt.observing import FoundDomain, agent_domains
from agent.drivers.libvirt.seeds import Seed, read_seed
from agent.drivers.libvirt.volumes import agent_volumes

NAMESPACE = {"ef": "https://edgefleet.dev/libvirt/1"}


class MemoryContents:
    """Volume bytes kept in memory, by volume path: libvirt's test driver has no streams."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def write(self, volume: Any, data: bytes) -> None:
        self.files[volume.path()] = data

    def read(self, volume: Any) -> bytes:
        return self.files[volume.path()]


@dataclass
class LibvirtAgent:
    """One appliance's agent: its data folder, its driver settings and its libvirt."""

    appliance: str
    data_dir: Path
    connection: Any
    settings: LibvirtSettings
    contents: VolumeContents | None = None
    uri: str = ""
    results: list[ApplyResult] = field(default_factory=list)

    def name(self, suffix: str) -> str:
        """A cluster name unique to this test."""
        return f"{self.appliance}-{suffix}"

    def driver(self, **changes: Any) -> LibvirtDriver:
        settings = replace(self.settings, **changes)
        return LibvirtDriver(connection=self.connection, settings=settings, contents=self.contents)

    def apply(
        self,
        state: DesiredState,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        **settings: Any,
    ) -> ApplyResult:
        with Inventory.open(self.data_dir) as inventory:
            result = apply_state(
                state,
                driver=self.driver(**settings),
                inventory=inventory,
                clock=SystemClock(),
                on_progress=on_progress,
                start_timeout=30,
                age_key=self.data_dir / AGE_KEY_NAME,
            )
        self.results.append(result)
        return result

    def records(self) -> tuple[Record, ...]:
        with Inventory.open(self.data_dir) as inventory:
            return inventory.records()

    # -- what exists -----------------------------------------------------------------------

    def domains(self, cluster: str | None = None) -> list[FoundDomain]:
        found = agent_domains(self.connection, appliance=self.appliance)
        return [d for d in found if cluster is None or d.metadata.cluster == cluster]

    def domain_names(self, cluster: str | None = None) -> list[str]:
        return [d.name for d in self.domains(cluster)]

    def node_domain(self, node: str) -> FoundDomain:
        (found,) = [d for d in self.domains() if d.metadata.node == node]
        return found

    def xml(self, domain: str) -> ET.Element:
        return ET.fromstring(self.connection.lookupByName(domain).XMLDesc(0))

    def volume_names(self) -> list[str]:
        return [str(v.name) for v in agent_volumes(self.connection, appliance=self.appliance)]

    def volumes_of(self, domain: str) -> list[str]:
        """The volumes a domain uses: its disks (which outlive it) and its seeds."""
        (found,) = [d for d in self.domains() if d.name == domain]
        return [n for n in self.volume_names() if n in found.disks or n.split(".")[2] == domain]

    def disk_of(self, node: str, kind: str) -> str:
        """The name of the node's ``root`` or ``data`` disk, as its domain uses it."""
        (name,) = [n for n in self.node_domain(node).disks if n.endswith(f".{kind}.qcow2")]
        return name

    def seed(self, domain: str) -> Seed:
        found = self.node_domain(next(d.metadata.node for d in self.domains() if d.name == domain))
        ref = found.metadata.seed
        volume = self.connection.storagePoolLookupByName(ref.pool).storageVolLookupByName(
            ref.volume
        )
        assert self.contents is not None
        return read_seed(self.contents.read(volume))

    def remove_everything(self) -> None:
        for domain in self.domains():
            handle = self.connection.lookupByName(domain.name)
            if handle.isActive():
                handle.destroy()
            handle.undefine()
        for volume in agent_volumes(self.connection, appliance=self.appliance):
            volume.handle.delete(0)


def virsh(uri: str, *args: str) -> str:
    """``virsh -c URI ARGS``: libvirt as an operator sees it."""
    done = subprocess.run(
        ["virsh", "-q", "-c", uri, *args], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, f"virsh {' '.join(args)}: {done.stderr.strip()}"
    return done.stdout


def wait_for_console(connection: Any, domain: str, pattern: str, *, timeout: float = 90) -> str:
    """Read the domain's serial console until a line matches ``pattern``; that line. A
    blocking stream read in a thread: without an event loop, only a blocking read moves."""
    stream = connection.newStream(0)
    connection.lookupByName(domain).openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
    chunks: list[bytes] = []

    def read() -> None:
        try:
            while chunk := stream.recv(4096):
                chunks.append(chunk)
        except libvirt.libvirtError:
            pass  # aborted below

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and reader.is_alive():
            for line in b"".join(chunks).decode(errors="replace").splitlines():
                if re.search(pattern, line):
                    return line.strip()
            time.sleep(0.2)
    finally:
        try:
            stream.abort()
        except libvirt.libvirtError:
            pass
    tail = b"".join(chunks).decode(errors="replace")[-600:]
    raise AssertionError(f"{domain}: no console line matched {pattern!r} in {timeout}s:\n{tail}")
