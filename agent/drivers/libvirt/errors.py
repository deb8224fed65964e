"""The libvirt boundary's errors: libvirt-python's one ``libvirtError`` mapped to what the agent
can act on, with ``raise ... from e``, for the driver and for day-2 work alike::

    LibvirtError (agent.drivers.DriverError)
    ├── Unreachable         temporary   libvirt does not answer (no socket, daemon down, ssh)
    ├── PlacementFailed     permanent   a pool, network, image, CPU or memory a node needs is
    │                                   missing on the host; the message names the pool
    ├── Conflict            temporary   libvirt's state changed under us (a name taken, gone)
    ├── HypervisorFailed    temporary   libvirt or qemu failed at an operation
    ├── GuestAgentSilent    permanent   a node's QEMU guest agent does not answer
    └── Refused             permanent   libvirt refused the request (bad XML, unsupported)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import libvirt

from agent.drivers import DriverError, Reason

# codes that say the object asked for does not exist (any more)
ABSENT = frozenset(
    {
        libvirt.VIR_ERR_NO_DOMAIN,
        libvirt.VIR_ERR_NO_STORAGE_VOL,
        libvirt.VIR_ERR_NO_STORAGE_POOL,
        libvirt.VIR_ERR_NO_NETWORK,
        libvirt.VIR_ERR_NO_INTERFACE,
    }
)
_UNREACHABLE = frozenset(
    {libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_AUTH_FAILED}
)
_UNREACHABLE_FROM = frozenset({libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE})
_CONFLICT = ABSENT | {
    libvirt.VIR_ERR_OPERATION_INVALID,
    libvirt.VIR_ERR_DOM_EXIST,
    libvirt.VIR_ERR_STORAGE_VOL_EXIST,
}
_AGENT_SILENT = frozenset({libvirt.VIR_ERR_AGENT_UNRESPONSIVE, libvirt.VIR_ERR_AGENT_UNSYNCED})
_FAILED = frozenset(
    {
        libvirt.VIR_ERR_INTERNAL_ERROR,
        libvirt.VIR_ERR_OPERATION_FAILED,
        libvirt.VIR_ERR_OPERATION_TIMEOUT,
        libvirt.VIR_ERR_SYSTEM_ERROR,
    }
)


class LibvirtError(DriverError): ...


class Unreachable(LibvirtError, reason=Reason.ENGINE_UNREACHABLE, temporary=True): ...


class PlacementFailed(LibvirtError, reason=Reason.PLACEMENT_FAILED): ...


class Conflict(LibvirtError, reason=Reason.CONFLICT, temporary=True): ...


class HypervisorFailed(LibvirtError, temporary=True): ...


class GuestAgentSilent(LibvirtError): ...


class Refused(LibvirtError): ...


def explain(error: libvirt.libvirtError) -> str:
    """libvirt's message, one line and bounded."""
    text = str(error.get_error_message() or error).strip()
    return (text.splitlines() or ["unknown libvirt error"])[0][:300]


def classify(error: libvirt.libvirtError, what: str) -> LibvirtError:
    code = error.get_error_code()
    message = f"{what}: {explain(error)}"
    if code in _UNREACHABLE or error.get_error_domain() in _UNREACHABLE_FROM:
        return Unreachable(f"{what}: libvirt unreachable: {explain(error)}")
    if code in _CONFLICT:
        return Conflict(message)
    if code in _FAILED:
        return HypervisorFailed(message)
    return Refused(message)


@contextmanager
def mapped(what: str, *, node: str | None = None, stream: Any = None) -> Iterator[None]:
    """libvirt's errors as :class:`LibvirtError`, with the action in the message; a failed
    ``stream`` is aborted."""
    try:
        yield
    except libvirt.libvirtError as e:
        if stream is not None:
            _abort(stream)
        if e.get_error_code() in _AGENT_SILENT:
            raise GuestAgentSilent(
                f"{what}: the guest agent of {node or 'the node'} does not answer"
                " (is qemu-guest-agent running in the node?)"
            ) from e
        raise classify(e, what) from e
    except BaseException:
        if stream is not None:
            _abort(stream)
        raise


@contextmanager
def absent_is_fine() -> Iterator[None]:
    """Inside :func:`mapped`: removing what does not exist is done already."""
    try:
        yield
    except libvirt.libvirtError as e:
        if e.get_error_code() not in ABSENT:
            raise


def is_absent(error: libvirt.libvirtError) -> bool:
    return error.get_error_code() in ABSENT


def _abort(stream: Any) -> None:
    try:
        stream.abort()
    except libvirt.libvirtError:
        pass  # broken already: the original error says why
