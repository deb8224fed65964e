"""The libvirt driver: a virtualized cluster's nodes as KVM domains, each with its root disk
cloned from the image pool, an optional data disk, a seed CD-ROM (user data, the node's join,
manifests) and NICs on its placement's networks. Root and data disks outlive the domain: the
node's next domain (a restart, see :mod:`agent.naming`) boots on them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import libvirt

from agent.contract import Mode
from agent.drivers import NodeLaunch, Observation, PlacementChange
from agent.drivers.libvirt.errors import (
    Conflict,
    PlacementFailed,
    Refused,
    absent_is_fine,
    is_absent,
    mapped,
)
from agent.drivers.libvirt.observing import (
    FoundDomain,
    agent_domains,
    domain_state,
    observation,
    read_domain,
)
from agent.drivers.libvirt.placement import check_changes, read_host
from agent.drivers.libvirt.rendering import (
    NAMESPACE,
    NODE_TEMPLATES,
    DirectBoot,
    Disk,
    Domain,
    ManifestRef,
    Nic,
    NodeMetadata,
    SeedRef,
    Templates,
)
from agent.drivers.libvirt.seeds import JOIN_CONFIG, JOIN_TOKEN, Seed, read_seed
from agent.drivers.libvirt.volumes import (
    DATA,
    ROOT,
    StreamedContents,
    VolumeContents,
    VolumeName,
    agent_volumes,
    parse_logical,
    seed_kind,
)
from agent.naming import ManifestWrite, content_sha256

DEFAULT_IMAGE = "ubuntu-22.04.5-server-cloudimg-amd64.qcow2"
GIB = 1024**3
# a node's saved state and snapshots go with it (its domains boot BIOS: no NVRAM to keep)
_UNDEFINE = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
)


@dataclass(frozen=True)
class LibvirtSettings:
    """How nodes are made. ``domain_type`` None: ``kvm``, or ``test`` on libvirt's test
    driver. ``cpu_mode`` None leaves the CPU model to libvirt. ``boot`` boots a kernel and
    initrd from the host instead of the image's boot loader. The ratios say how far the
    running domains may commit the host's online CPUs and memory."""

    default_image: str = DEFAULT_IMAGE
    domain_type: str | None = None
    arch: str = "x86_64"
    machine: str | None = None
    cpu_mode: str | None = "host-passthrough"
    boot: DirectBoot | None = None
    cpu_ratio: float = 4.0
    memory_ratio: float = 1.0
    templates: Path = NODE_TEMPLATES


class LibvirtDriver:
    def __init__(
        self,
        *,
        connection: Any,
        settings: LibvirtSettings,
        contents: VolumeContents | None = None,
    ) -> None:
        self._connection = connection
        self._settings = settings
        self._contents = contents or StreamedContents(connection=connection)
        self._templates = Templates(settings.templates)

    @property
    def mode(self) -> Mode:
        return "virtualized"

    @property
    def default_image(self) -> str:
        return self._settings.default_image

    # -- observing -------------------------------------------------------------------------

    def observe(self, *, appliance: str) -> Observation:
        domains = agent_domains(self._connection, appliance=appliance)
        volumes = agent_volumes(self._connection, appliance=appliance)
        return observation(domains, volumes)

    def node_state(self, container: str) -> str | None:
        with mapped(f"look up domain {container}"):
            try:
                state, _ = self._connection.lookupByName(container).state()
            except libvirt.libvirtError as e:
                if is_absent(e):
                    return None
                raise
        return domain_state(state)

    def check_placement(self, changes: Sequence[PlacementChange]) -> None:
        settings = self._settings
        check_changes(
            changes,
            host=read_host(self._connection),
            connection=self._connection,
            cpu_ratio=settings.cpu_ratio,
            memory_ratio=settings.memory_ratio,
        )

    # -- networks: the operator's, named in the placement; the agent makes none ----------

    def ensure_network(self, *, name: str, cluster: str, appliance: str) -> None:
        return None

    def remove_network(self, name: str) -> None:
        return None

    # -- nodes -----------------------------------------------------------------------------

    def create_node(self, launch: NodeLaunch) -> None:
        resources, placement = launch.resources, launch.placement
        if resources is None or placement is None:
            raise PlacementFailed(
                f"pool {launch.pool}: node {launch.node} has no resources or placement"
            )

        def name(owner: str, kind: str) -> VolumeName:
            return VolumeName.of(launch.appliance, launch.cluster, owner, kind)

        join = launch.join
        seed = Seed(
            user_data=launch.user_data,
            meta_data=self._templates.meta_data(instance_id=launch.container, hostname=launch.node),
            vendor_data=self._templates.vendor_data(hostname=launch.node, role=launch.role),
            manifests={f.filename: f.content for f in launch.manifests},
            join=(
                {}
                if join is None
                else {JOIN_CONFIG: join.config(role=launch.role), JOIN_TOKEN: join.token + "\n"}
            ),
        )
        seed_name = name(launch.container, seed_kind(seed.digest()))
        root = name(_owner(launch.root or f"{launch.container}-root"), ROOT)
        disks = [Disk(placement.targetStoragePool, str(root), "vda")]
        with mapped(f"create node {launch.node}"):
            self._clone_root(launch, str(root))
            if resources.dataDiskGiB:
                if not placement.dataStoragePool:
                    raise PlacementFailed(f"pool {launch.pool}: data disk without dataStoragePool")
                data = str(name(_owner(launch.volume or f"{launch.container}-data"), DATA))
                self._ensure_disk(placement.dataStoragePool, data, resources.dataDiskGiB * GIB)
                disks.append(Disk(placement.dataStoragePool, data, "vdb"))
            self._write_volume(placement.targetStoragePool, str(seed_name), seed.build())
            metadata = NodeMetadata(
                appliance=launch.appliance,
                cluster=launch.cluster,
                pool=launch.pool,
                node=launch.node,
                role=launch.role,
                revision=launch.revision,
                digest=launch.digest,
                spec=launch.spec,
                seed=SeedRef(
                    placement.targetStoragePool,
                    str(seed_name),
                    tuple(ManifestRef(f.filename, f.sha256) for f in launch.manifests),
                ),
                labels=tuple(sorted(launch.setup.labels.items())),
            )
            kind = "bridge" if placement.networkType == "bridge" else "network"
            xml = self._templates.domain(
                Domain(
                    name=launch.container,
                    domain_type=self._domain_type(),
                    arch=self._settings.arch,
                    machine=self._settings.machine,
                    cpu_mode=self._settings.cpu_mode,
                    vcpus=resources.cpu,
                    cpuset=resources.cpuSet,
                    memory_gib=resources.memoryGiB,
                    disks=tuple(disks),
                    nics=tuple(Nic(kind, network) for network in placement.networks),
                    boot=self._settings.boot,
                    node=metadata,
                )
            )
            if self._lookup(launch.container) is None:
                domain = self._connection.defineXML(xml)
                domain.setAutostart(1)

    def start_node(self, container: str) -> None:
        with mapped(f"start {container}"):
            domain = self._connection.lookupByName(container)
            if not domain.isActive():
                domain.create()

    def remove_node(self, *, container: str, volumes: Sequence[str] = ()) -> None:
        with mapped(f"remove {container}"):
            domain = self._lookup(container)
            if domain is not None:
                with absent_is_fine():
                    if domain.isActive():
                        domain.destroy()
                with absent_is_fine():
                    try:
                        domain.undefineFlags(_UNDEFINE)
                    except libvirt.libvirtError as e:
                        if e.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                            raise
                        domain.undefine()
        for name in (f"{container}-seed", *volumes):
            self.remove_volume(name)

    def remove_volume(self, name: str) -> None:
        """``name`` is a logical volume (``<owner>-root``, ``-data`` or ``-seed``)."""
        parsed = parse_logical(name)
        if parsed is None:
            return
        owner, kind = parsed
        for found in agent_volumes(self._connection):
            if found.name.container != owner:
                continue
            if found.name.kind == kind or (kind is None and found.name.is_seed):
                with mapped(f"remove volume {found.name}"), absent_is_fine():
                    found.handle.delete(0)

    # -- manifests: on the seed CD, whose media is changed in place ------------------------

    def write_manifests(self, container: str, files: Sequence[ManifestWrite]) -> None:
        domain, found, seed = self._current_seed(container)
        merged = dict(seed.manifests) | {f.filename: f.content for f in files}
        self._swap_seed(domain, found, replace(seed, manifests=merged))

    def remove_manifests(self, container: str, filenames: Sequence[str]) -> None:
        domain, found, seed = self._current_seed(container)
        kept = {name: text for name, text in seed.manifests.items() if name not in filenames}
        self._swap_seed(domain, found, replace(seed, manifests=kept))

    # -- internals -------------------------------------------------------------------------

    def _domain_type(self) -> str:
        if self._settings.domain_type is not None:
            return self._settings.domain_type
        with mapped("ask libvirt for its driver"):
            return "test" if str(self._connection.getType()).lower() == "test" else "kvm"

    def _lookup(self, container: str) -> Any:
        try:
            return self._connection.lookupByName(container)
        except libvirt.libvirtError as e:
            if is_absent(e):
                return None
            raise

    def _clone_root(self, launch: NodeLaunch, name: str) -> None:
        """The root disk: a full copy of the image, grown to ``rootDiskGiB``. One left by a
        domain undefined by hand is used again, with what the node had written to it."""
        assert launch.placement is not None and launch.resources is not None
        target = self._connection.storagePoolLookupByName(launch.placement.targetStoragePool)
        try:
            target.storageVolLookupByName(name)
            return
        except libvirt.libvirtError as e:
            if not is_absent(e):
                raise
        source = self._connection.storagePoolLookupByName(launch.placement.imageStoragePool)
        image = source.storageVolLookupByName(launch.image)
        capacity = launch.resources.rootDiskGiB * GIB
        if capacity < int(image.info()[1]):
            raise PlacementFailed(
                f"pool {launch.pool}: rootDiskGiB {launch.resources.rootDiskGiB} is smaller "
                f"than image {launch.image}"
            )
        xml = self._templates.volume(name=name, capacity=capacity, format="qcow2")
        volume = target.createXMLFrom(xml, image, 0)
        if int(volume.info()[1]) < capacity:
            volume.resize(capacity, 0)

    def _ensure_disk(self, pool_name: str, name: str, capacity: int) -> None:
        pool = self._connection.storagePoolLookupByName(pool_name)
        try:
            pool.storageVolLookupByName(name)
            return
        except libvirt.libvirtError as e:
            if not is_absent(e):
                raise
        pool.createXML(self._templates.volume(name=name, capacity=capacity, format="qcow2"), 0)

    def _write_volume(self, pool_name: str, name: str, data: bytes) -> None:
        """A volume holding exactly ``data``; one of that name is made again, since a pass
        cut short may have left it half written."""
        pool = self._connection.storagePoolLookupByName(pool_name)
        try:
            pool.storageVolLookupByName(name).delete(0)
        except libvirt.libvirtError as e:
            if not is_absent(e):
                raise
        volume = pool.createXML(
            self._templates.volume(name=name, capacity=len(data), format="raw"), 0
        )
        self._contents.write(volume, data)

    def _current_seed(self, container: str) -> tuple[Any, FoundDomain, Seed]:
        with mapped(f"read the seed of {container}"):
            domain = self._connection.lookupByName(container)
            found = read_domain(domain)
            if found is None:
                raise Conflict(f"domain {container} is not one of the agent's nodes")
            ref = found.metadata.seed
            try:
                volume = self._connection.storagePoolLookupByName(ref.pool).storageVolLookupByName(
                    ref.volume
                )
            except libvirt.libvirtError as e:
                if not is_absent(e):
                    raise
                raise Refused(
                    f"the seed {ref.volume} of {container} is gone: its user data can only "
                    "come back with a new node (change its spec to replace it)"
                ) from e
            data = self._contents.read(volume)
        return domain, found, read_seed(data)

    def _swap_seed(self, domain: Any, found: FoundDomain, seed: Seed) -> None:
        """Write ``seed`` as a new volume, put it in the CD-ROM (live and in the definition),
        then record it in the metadata and remove the node's other seeds."""
        metadata = found.metadata
        pool = metadata.seed.pool
        kind = seed_kind(seed.digest())
        name = str(VolumeName.of(metadata.appliance, metadata.cluster, found.name, kind))
        ref = SeedRef(
            pool,
            name,
            tuple(
                ManifestRef(file, content_sha256(text))
                for file, text in sorted(seed.manifests.items())
            ),
        )
        with mapped(f"change the seed of {found.name}"):
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
            if domain.isActive():
                flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
            if found.seed_source != (pool, name):
                self._write_volume(pool, name, seed.build())
                domain.updateDeviceFlags(self._templates.seed_disk(ref), flags)
            domain.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                _unqualified(self._templates.metadata(replace(metadata, seed=ref))),
                "edgefleet",
                NAMESPACE,
                flags,
            )
        for volume in agent_volumes(self._connection):
            if volume.name.container == found.name and volume.name.is_seed:
                if (volume.pool, str(volume.name)) != (pool, name):
                    with mapped(f"remove volume {volume.name}"), absent_is_fine():
                        volume.handle.delete(0)


def _owner(logical: str) -> str:
    parsed = parse_logical(logical)
    return parsed[0] if parsed is not None else logical


def _unqualified(xml: str) -> str:
    """The metadata element without its namespace: setMetadata puts it in the namespace
    it is given, and refuses an element that declares one already."""
    root = ET.fromstring(xml)
    for element in root.iter():
        element.tag = element.tag.rsplit("}", 1)[-1]
    return ET.tostring(root, encoding="unicode")
