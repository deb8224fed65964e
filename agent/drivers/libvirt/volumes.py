"""The storage volumes of the agent's nodes, named ``<appliance>.<cluster>.<owner>.<kind>``
(libvirt volumes carry no labels): finding them, writing their bytes.

A seed belongs to its domain (the owner is the domain's name); a root or data disk belongs to
the node while what it was made for stays (the owner is ``<node>-<generation>``, see
:mod:`agent.naming`), so the node's next domain starts on it. The planner knows each by a
logical name: ``<owner>-root``, ``<owner>-data``, ``<owner>-seed``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import libvirt

from agent.drivers.libvirt.errors import Refused, mapped

ROOT = "root.qcow2"
DATA = "data.qcow2"
SEED_PREFIX = "seed-"
SEED_SUFFIX = ".iso"
CHUNK = 256 * 1024


@dataclass(frozen=True)
class VolumeName:
    appliance: str
    cluster: str
    container: str
    kind: str

    def __str__(self) -> str:
        return ".".join((self.appliance, self.cluster, self.container, self.kind))

    @property
    def is_seed(self) -> bool:
        return self.kind.startswith(SEED_PREFIX)

    @classmethod
    def of(cls, appliance: str, cluster: str, container: str, kind: str) -> VolumeName:
        for part, what in ((appliance, "appliance"), (cluster, "cluster"), (container, "node")):
            if not part or "." in part:
                raise Refused(f"{what} name {part!r} cannot name a volume (no dots allowed)")
        return cls(appliance, cluster, container, kind)

    @classmethod
    def parse(cls, name: str) -> VolumeName | None:
        """The parts of one of the agent's volume names; None for anybody else's volume."""
        parts = name.split(".", 3)
        if len(parts) != 4 or not all(parts):
            return None
        kind = parts[3]
        seed = kind.startswith(SEED_PREFIX) and kind.endswith(SEED_SUFFIX)
        if kind not in (ROOT, DATA) and not seed:
            return None
        return cls(parts[0], parts[1], parts[2], kind)


def seed_kind(digest: str) -> str:
    return f"{SEED_PREFIX}{digest[:12]}{SEED_SUFFIX}"


_LOGICAL = {ROOT: "-root", DATA: "-data"}
SEED_LOGICAL = "-seed"


def logical_name(name: VolumeName) -> str:
    """The name the planner knows a volume by."""
    return name.container + (SEED_LOGICAL if name.is_seed else _LOGICAL[name.kind])


def parse_logical(logical: str) -> tuple[str, str | None] | None:
    """(owner, kind) of a logical name; kind None for a domain's seeds."""
    for kind, suffix in _LOGICAL.items():
        if logical.endswith(suffix):
            return logical.removesuffix(suffix), kind
    if logical.endswith(SEED_LOGICAL):
        return logical.removesuffix(SEED_LOGICAL), None
    return None


@dataclass(frozen=True)
class FoundVolume:
    pool: str
    name: VolumeName
    handle: Any  # libvirt.virStorageVol


def agent_volumes(connection: Any, *, appliance: str | None = None) -> list[FoundVolume]:
    """The agent's volumes in every active pool (of one appliance, or of any)."""
    found: list[FoundVolume] = []
    with mapped("list storage pools"):
        pools = connection.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
    for pool in pools:
        with mapped(f"list volumes of storage pool {pool.name()}"):
            try:
                volumes = pool.listAllVolumes(0)
            except libvirt.libvirtError:
                if pool.isActive():
                    raise
                continue  # stopped while we looked
        for volume in volumes:
            name = VolumeName.parse(volume.name())
            if name is not None and (appliance is None or name.appliance == appliance):
                found.append(FoundVolume(pool.name(), name, volume))
    return sorted(found, key=lambda v: (v.pool, str(v.name)))


class VolumeContents(Protocol):
    def write(self, volume: Any, data: bytes) -> None: ...

    def read(self, volume: Any) -> bytes: ...


class StreamedContents:
    """A volume's bytes through libvirt streams: works the same over the local socket and
    over qemu+ssh."""

    def __init__(self, *, connection: Any) -> None:
        self._connection = connection

    def write(self, volume: Any, data: bytes) -> None:
        stream = self._connection.newStream(0)
        try:
            volume.upload(stream, 0, len(data), 0)
            view = memoryview(data)
            for start in range(0, len(data), CHUNK):
                stream.send(bytes(view[start : start + CHUNK]))
            stream.finish()
        except BaseException:
            _abort(stream)
            raise

    def read(self, volume: Any) -> bytes:
        stream = self._connection.newStream(0)
        chunks: list[bytes] = []
        try:
            volume.download(stream, 0, 0, 0)
            while True:
                chunk = stream.recv(CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
            stream.finish()
        except BaseException:
            _abort(stream)
            raise
        return b"".join(chunks)


def _abort(stream: Any) -> None:
    try:
        stream.abort()
    except libvirt.libvirtError:
        pass  # the stream is broken already: the original error says why
