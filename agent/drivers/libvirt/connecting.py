"""Where libvirt is: the connection URI from the agent's configuration (any URI, qemu+ssh
with the installer's key and user, or the local socket), and the connection."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import libvirt

from agent.drivers.libvirt.errors import Refused, Unreachable, explain

DEFAULT_SOCKET = "/var/run/libvirt/libvirt-sock"
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def connection_uri(
    *,
    uri: str | None = None,
    socket: str = DEFAULT_SOCKET,
    ssh_host: str | None = None,
    ssh_user: str | None = None,
    ssh_key: str | None = None,
) -> str:
    """The URI to open: ``uri`` as given, else qemu+ssh when ``ssh_host`` is set, else the
    socket (``qemu:///system`` for the default one)."""
    if uri:
        return uri
    if ssh_host:
        if not _HOST.fullmatch(ssh_host):
            raise Refused(f"libvirt over ssh: {ssh_host!r} is not a host name or address")
        if not ssh_user or not _USER.fullmatch(ssh_user):
            raise Refused(f"libvirt over ssh: {ssh_user!r} is not a user name")
        query = f"?keyfile={quote(ssh_key, safe='/')}" if ssh_key else ""
        return f"qemu+ssh://{ssh_user}@{ssh_host}/system{query}"
    if socket.rstrip("/") in (DEFAULT_SOCKET, "/run/libvirt/libvirt-sock"):
        return "qemu:///system"
    return f"qemu+unix:///system?socket={quote(socket, safe='/')}"


def connect(uri: str) -> Any:
    """A read-write ``libvirt.virConnect`` to ``uri``; the caller closes it."""
    # libvirt's default handler prints every error to stderr as well; the driver maps each
    # one to a one-line DriverError, so that copy is only noise on the agent's output
    libvirt.registerErrorHandler(_ignore, None)
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as e:
        raise Unreachable(f"libvirt at {uri} is unreachable: {explain(e)}") from e


def _ignore(context: object, error: object) -> None:
    return None
