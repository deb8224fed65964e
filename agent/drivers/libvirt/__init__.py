"""The libvirt driver: virtualized clusters as KVM virtual machines (libvirt-python).

connecting    the URI (local socket, qemu+ssh, any URI) and the connection
driving       the Driver: create, start, remove nodes; manifests on the seed
observing     the agent's domains and volumes, as an Observation
placement     whether a pass's new nodes fit the host, before anything is made
rendering     domain, metadata and volume XML, seed files, from templates/nodes/
seeds         the cloud-init NoCloud seed ISO (pycdlib)
volumes       volume names, finding volumes, writing their bytes
guests        the QEMU guest agent of a domain
nodes         day-2: commands, reboots and scan tools in the nodes
datavolumes   day-2: data disks copied out and written back
errors        the exception tree, mapped from libvirt's errors
"""

from agent.drivers.libvirt.connecting import DEFAULT_SOCKET, connect, connection_uri
from agent.drivers.libvirt.driving import DEFAULT_IMAGE, LibvirtDriver, LibvirtSettings
from agent.drivers.libvirt.errors import (
    Conflict,
    HypervisorFailed,
    LibvirtError,
    PlacementFailed,
    Refused,
    Unreachable,
)
from agent.drivers.libvirt.rendering import DirectBoot
from agent.drivers.libvirt.volumes import StreamedContents, VolumeContents

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_SOCKET",
    "Conflict",
    "DirectBoot",
    "HypervisorFailed",
    "LibvirtDriver",
    "LibvirtError",
    "LibvirtSettings",
    "PlacementFailed",
    "Refused",
    "StreamedContents",
    "Unreachable",
    "VolumeContents",
    "connect",
    "connection_uri",
]
