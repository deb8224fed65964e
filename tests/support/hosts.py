"""The hosts the libvirt tests place nodes on.

``prepare_test_host``: libvirt's built-in ``test:///default`` driver, in this process only,
given what an appliance has: storage pools ``vms`` (holding the image ``base.qcow2``: the test
driver clones only within one pool) and ``data``, the network ``default`` and the bridge
``br-test``. Its host has the CPUs 0, 2 and 4 online and 3 GiB of memory, so placement has
limits to hit.

``RealHost``: storage pools (dir, in a folder of their own), an isolated network with no
address (it reaches nothing) and an image, made for a session on a real libvirtd and removed
at its end.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt

IMAGE = "base.qcow2"


def prepare_test_host(connection: Any) -> None:
    # the driver's own domain holds 2 of the host's 3 GiB: the tests want that room
    builtin = connection.lookupByName("test")
    builtin.destroy()
    builtin.undefine()
    for name in ("vms", "data"):
        pool = connection.storagePoolDefineXML(
            f"<pool type='dir'><name>{name}</name><target><path>/{name}</path></target></pool>"
        )
        pool.create()
    images = connection.storagePoolLookupByName("vms")
    images.createXML(_volume(IMAGE, 2 * 1024**3), 0)
    bridge = connection.interfaceDefineXML(
        "<interface type='bridge' name='br-test'><start mode='onboot'/>"
        "<bridge><interface type='ethernet' name='eth7'/></bridge></interface>"
    )
    bridge.create()


@dataclass
class RealHost:
    """What one session made on a real libvirtd, by name."""

    connection: Any
    uri: str
    folder: Path
    images: str
    vms: str
    data: str
    network: str
    bridge: str
    image: str = IMAGE

    @classmethod
    def make(cls, connection: Any, uri: str, run_id: str) -> RealHost:
        folder = Path(tempfile.mkdtemp(prefix="edgefleet-libvirt-pools-"))
        folder.chmod(0o755)
        names = {kind: f"ef{run_id}-{kind}" for kind in ("images", "vms", "data")}
        host = cls(
            connection, uri, folder, **names, network=f"ef{run_id}-net", bridge=f"ef{run_id}br"
        )
        try:
            for name in names.values():
                path = folder / name
                path.mkdir(mode=0o755)
                connection.storagePoolCreateXML(
                    f"<pool type='dir'><name>{name}</name>"
                    f"<target><path>{path}</path></target></pool>",
                    0,
                )
            connection.storagePoolLookupByName(host.images).createXML(
                _volume(IMAGE, 64 * 1024**2), 0
            )
            connection.networkCreateXML(
                f"<network><name>{host.network}</name>"
                f"<bridge name='{host.bridge}' stp='off'/></network>"
            )
        except BaseException:
            host.remove()
            raise
        return host

    def remove(self) -> None:
        for name in (self.images, self.vms, self.data):
            try:
                pool = self.connection.storagePoolLookupByName(name)
            except libvirt.libvirtError:
                continue
            for volume in pool.listAllVolumes(0):
                volume.delete(0)
            pool.destroy()
        try:
            self.connection.networkLookupByName(self.network).destroy()
        except libvirt.libvirtError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


def _volume(name: str, capacity: int) -> str:
    return (
        f"<volume><name>{name}</name><capacity unit='bytes'>{capacity}</capacity>"
        "<target><format type='qcow2'/></target></volume>"
    )
