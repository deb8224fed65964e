"""Placement: whether a pass's new nodes fit this host (pools, image, networks, cpuset, then
CPUs and memory as its removals and creations play out), checked before anything is made."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import libvirt

from agent.drivers import NodeLaunch, NodeRemoval, PlacementChange
from agent.drivers.libvirt.errors import PlacementFailed, is_absent, mapped

GIB_KIB = 1024 * 1024
_CPU_ITEM = re.compile(r"^(\^)?(\d+)(?:-(\d+))?$")


@dataclass(frozen=True)
class Host:
    cpus: int  # present
    online: frozenset[int]
    memory_kib: int
    pools: frozenset[str]  # active storage pools
    networks: frozenset[str]  # active libvirt networks
    interfaces: frozenset[str]  # host interfaces, bridges among them
    used_vcpus: dict[str, int]  # running domain -> vCPUs
    used_memory_kib: dict[str, int]  # running domain -> memory


def read_host(connection: Any) -> Host:
    with mapped("read the host's CPUs and memory"):
        cpus, online_map, _ = connection.getCPUMap(0)
        try:
            memory_kib = int(
                connection.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)["total"]
            )
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            memory_kib = int(connection.getInfo()[1]) * 1024
    with mapped("list storage pools, networks and interfaces"):
        pools = connection.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
        networks = connection.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_ACTIVE)
        # a bridge with no port up yet has no carrier, and libvirt calls it inactive
        interfaces = connection.listAllInterfaces(0)
        running = connection.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
    vcpus: dict[str, int] = {}
    memory: dict[str, int] = {}
    for domain in running:
        try:
            info = domain.info()
        except libvirt.libvirtError as e:
            if is_absent(e):
                continue  # gone while we looked: holds nothing
            raise
        vcpus[domain.name()] = int(info[3])
        memory[domain.name()] = int(info[1])
    return Host(
        cpus=int(cpus),
        online=frozenset(i for i, up in enumerate(online_map) if up),
        memory_kib=memory_kib,
        pools=frozenset(p.name() for p in pools),
        networks=frozenset(n.name() for n in networks),
        interfaces=frozenset(i.name() for i in interfaces),
        used_vcpus=vcpus,
        used_memory_kib=memory,
    )


def check_changes(
    changes: Sequence[PlacementChange],
    *,
    host: Host,
    connection: Any,
    cpu_ratio: float,
    memory_ratio: float,
) -> None:
    launches = [c for c in changes if isinstance(c, NodeLaunch)]
    for launch in launches:
        _check_node(launch, host=host, connection=connection)
    _check_capacity(changes, host=host, cpu_ratio=cpu_ratio, memory_ratio=memory_ratio)


def parse_cpuset(text: str) -> frozenset[int]:
    """libvirt's cpuset syntax: ``0-3,8,^2`` (ranges, single CPUs, exclusions)."""
    chosen: set[int] = set()
    excluded: set[int] = set()
    for item in text.replace(" ", "").split(","):
        match = _CPU_ITEM.fullmatch(item)
        if match is None:
            raise ValueError(item)
        first = int(match.group(2))
        last = int(match.group(3) or first)
        if last < first:
            raise ValueError(item)
        (excluded if match.group(1) else chosen).update(range(first, last + 1))
    return frozenset(chosen - excluded)


def _check_node(launch: NodeLaunch, *, host: Host, connection: Any) -> None:
    where = f"pool {launch.pool}"
    resources, placement = launch.resources, launch.placement
    if resources is None or placement is None:
        raise PlacementFailed(
            f"{where}: node {launch.node} has no resources or placement "
            "(virtual machines need both)"
        )
    pools = [placement.imageStoragePool, placement.targetStoragePool]
    if placement.dataStoragePool:
        pools.append(placement.dataStoragePool)
    for pool in pools:
        if pool not in host.pools:
            raise PlacementFailed(f"{where}: storage pool {pool} does not exist or is not active")
    if resources.dataDiskGiB and not placement.dataStoragePool:
        raise PlacementFailed(f"{where}: a data disk is asked for but no dataStoragePool")
    image_bytes = _image_size(connection, placement.imageStoragePool, launch.image)
    if image_bytes is None:
        raise PlacementFailed(
            f"{where}: image {launch.image} is not a volume of storage pool "
            f"{placement.imageStoragePool}"
        )
    if resources.rootDiskGiB * GIB_KIB * 1024 < image_bytes:
        raise PlacementFailed(
            f"{where}: rootDiskGiB {resources.rootDiskGiB} is smaller than image "
            f"{launch.image} ({_gib(image_bytes // 1024)} GiB)"
        )
    for network in placement.networks:
        if placement.networkType == "bridge" and network not in host.interfaces:
            raise PlacementFailed(f"{where}: bridge {network} does not exist on the host")
        if placement.networkType == "default" and network not in host.networks:
            raise PlacementFailed(f"{where}: network {network} does not exist or is not active")
    if resources.cpuSet:
        try:
            wanted = parse_cpuset(resources.cpuSet)
        except ValueError:
            raise PlacementFailed(
                f"{where}: cpuset {resources.cpuSet!r} is not a CPU list like 0-3,8"
            ) from None
        missing = sorted(wanted - host.online)
        if missing or not wanted:
            raise PlacementFailed(
                f"{where}: cpuset {resources.cpuSet} is not within the host's online CPUs "
                f"{_cpu_list(host.online)} (missing {_cpu_list(frozenset(missing)) or 'all'})"
            )


def _check_capacity(
    changes: Sequence[PlacementChange], *, host: Host, cpu_ratio: float, memory_ratio: float
) -> None:
    vcpus = dict(host.used_vcpus)
    memory = dict(host.used_memory_kib)
    cpu_limit = int(len(host.online) * cpu_ratio)
    memory_limit = int(host.memory_kib * memory_ratio)
    for change in changes:
        if isinstance(change, NodeRemoval):
            vcpus.pop(change.container, None)
            memory.pop(change.container, None)
            continue
        resources = change.resources
        assert resources is not None  # _check_node saw to it
        free_cpu = cpu_limit - sum(vcpus.values())
        free_kib = memory_limit - sum(memory.values())
        where = f"pool {change.pool}"
        if resources.memoryGiB * GIB_KIB > free_kib:
            raise PlacementFailed(
                f"{where}: node {change.node} needs {resources.memoryGiB} GiB of memory, "
                f"the host has {_gib(free_kib)} GiB free of {_gib(memory_limit)} GiB"
            )
        if resources.cpu > free_cpu:
            raise PlacementFailed(
                f"{where}: node {change.node} needs {resources.cpu} vCPUs, the host has "
                f"{max(free_cpu, 0)} free of {cpu_limit}"
            )
        vcpus[change.container] = resources.cpu
        memory[change.container] = resources.memoryGiB * GIB_KIB


def _image_size(connection: Any, pool: str, image: str) -> int | None:
    """The image's virtual size in bytes; None when the pool holds no such volume."""
    with mapped(f"look up image {image} in storage pool {pool}"):
        try:
            volume = connection.storagePoolLookupByName(pool).storageVolLookupByName(image)
        except libvirt.libvirtError as e:
            if is_absent(e):
                return None
            raise
        return int(volume.info()[1])


def _gib(kib: int) -> str:
    return f"{max(kib, 0) / GIB_KIB:.1f}".removesuffix(".0")


def _cpu_list(cpus: frozenset[int]) -> str:
    """``0-3,8`` for {0, 1, 2, 3, 8}."""
    ranges: list[str] = []
    for cpu in sorted(cpus):
        if ranges and ranges[-1].split("-")[-1] == str(cpu - 1):
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{cpu}"
        else:
            ranges.append(str(cpu))
    return ",".join(ranges)
