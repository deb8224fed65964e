"""What exists on the host as the planner sees it: the agent's domains, found by their
``<edgefleet:node>`` metadata, and their volumes, found by name."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import libvirt

from agent.drivers import Observation, ObservedContainer, ObservedVolume
from agent.drivers.libvirt.errors import classify, is_absent, mapped
from agent.drivers.libvirt.rendering import NAMESPACE, ManifestRef, NodeMetadata, SeedRef
from agent.drivers.libvirt.volumes import FoundVolume, VolumeName, logical_name
from agent.naming import volume_node

STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running",  # waiting on a resource, still running
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}
ACTIVE = frozenset(
    {
        libvirt.VIR_DOMAIN_RUNNING,
        libvirt.VIR_DOMAIN_BLOCKED,
        libvirt.VIR_DOMAIN_PAUSED,
        libvirt.VIR_DOMAIN_SHUTDOWN,
    }
)
_NS = {"ef": NAMESPACE}


@dataclass(frozen=True)
class FoundDomain:
    name: str
    metadata: NodeMetadata
    state: str
    active: bool
    vcpus: int
    memory_kib: int
    seed_source: tuple[str, str] | None  # (pool, volume) the CD-ROM holds
    disks: tuple[str, ...] = ()  # the volumes of its disks (root, data), by name


def domain_state(code: int) -> str:
    return STATES.get(code, "nostate")


def read_domain(domain: Any) -> FoundDomain | None:
    """The domain as the agent knows it, None when it is not one of the agent's (or was
    undefined while we looked)."""
    try:
        xml = domain.XMLDesc(0)
        state, _ = domain.state()
        info = domain.info()
    except libvirt.libvirtError as e:
        if is_absent(e):
            return None
        raise classify(e, f"read domain {domain.name()}") from e
    root = ET.fromstring(xml)
    element = root.find("metadata/ef:node", _NS)
    if element is None:
        return None
    metadata = parse_metadata(element)
    source = root.find("devices/disk[@device='cdrom']/source")
    seed = None if source is None else (source.get("pool", ""), source.get("volume", ""))
    disks = tuple(
        str(found.get("volume", ""))
        for found in root.findall("devices/disk[@device='disk']/source")
        if found.get("volume")
    )
    return FoundDomain(
        name=str(domain.name()),
        metadata=metadata,
        state=domain_state(state),
        active=state in ACTIVE,
        vcpus=int(info[3]),
        memory_kib=int(info[1]),
        seed_source=seed,
        disks=disks,
    )


def parse_metadata(element: ET.Element) -> NodeMetadata:
    def text(tag: str) -> str:
        found = element.find(f"ef:{tag}", _NS)
        return "" if found is None or found.text is None else found.text

    seed = element.find("ef:seed", _NS)
    listed = [] if seed is None else seed.findall("ef:manifest", _NS)
    files = tuple(ManifestRef(f.get("name", ""), f.get("sha256", "")) for f in listed)
    return NodeMetadata(
        appliance=text("appliance"),
        cluster=text("cluster"),
        pool=text("pool"),
        node=text("node"),
        role=text("role"),
        revision=text("revision"),
        digest=text("digest"),
        spec=text("spec"),
        seed=SeedRef(
            pool="" if seed is None else seed.get("pool", ""),
            volume="" if seed is None else seed.get("volume", ""),
            manifests=files,
        ),
        labels=tuple(
            (label.get("name", ""), label.text or "") for label in element.findall("ef:label", _NS)
        ),
    )


def agent_domains(connection: Any, *, appliance: str | None = None) -> list[FoundDomain]:
    with mapped("list domains"):
        listed = connection.listAllDomains(0)
    found: list[FoundDomain] = []
    for domain in listed:
        read = read_domain(domain)
        if read is not None and (appliance is None or read.metadata.appliance == appliance):
            found.append(read)
    return sorted(found, key=lambda d: d.name)


def observation(domains: list[FoundDomain], volumes: list[FoundVolume]) -> Observation:
    containers = {
        d.name: ObservedContainer(
            name=d.name,
            cluster=d.metadata.cluster,
            pool=d.metadata.pool,
            node=d.metadata.node,
            role=d.metadata.role,
            spec=d.metadata.spec,
            state=d.state,
            volumes=_used(d),
        )
        for d in domains
    }
    logical: dict[str, ObservedVolume] = {}
    for volume in volumes:
        name = logical_name(volume.name)
        logical[name] = ObservedVolume(
            name, volume.name.cluster, volume.name.container, node=volume_node(name) or ""
        )
    present = {(v.pool, str(v.name)) for v in volumes}
    manifests: dict[str, Mapping[str, str]] = {}
    for d in domains:
        if d.metadata.role != "control-plane":
            continue
        seed = (d.metadata.seed.pool, d.metadata.seed.volume)
        intact = d.seed_source == seed and seed in present
        manifests[d.name] = {f.name: f.sha256 for f in d.metadata.seed.manifests} if intact else {}
    return Observation(networks={}, containers=containers, volumes=logical, manifests=manifests)


def _used(domain: FoundDomain) -> tuple[str, ...]:
    """The logical names of the volumes a domain uses: its disks, and its seeds."""
    names = [VolumeName.parse(disk) for disk in domain.disks]
    used = [logical_name(n) for n in names if n is not None and not n.is_seed]
    return (*used, f"{domain.name}-seed")
