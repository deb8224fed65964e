"""The libvirt boundary's errors: libvirt-python's one ``libvirtError`` mapped to what the
agent can act on, with ``raise ... from e``::

    LibvirtError (agent.drivers.DriverError)
    ├── Unreachable         temporary   libvirt does not answer (no socket, daemon down, ssh)
    ├── PlacementFailed     permanent   a pool, network, image, CPU or memory a node needs is
    │                                   missing on the host; the message names the pool
    ├── Conflict            temporary   libvirt's state changed under us (a name taken, gone)
    ├── HypervisorFailed    temporary   libvirt or qemu failed at an operation
    └── Refused             permanent   libvirt refused the request (bad XML, unsupported)

Used by every module of :mod:`agent.drivers.libvirt`: :func:`mapped` wraps each call into
libvirt, :func:`absent_is_fine` makes removing what is gone a success.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

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
_FAILED = frozenset(
    {
        libvirt.VIR_ERR_INTERNAL_ERROR,
        libvirt.VIR_ERR_OPERATION_FAILED,
        libvirt.VIR_ERR_OPERATION_TIMEOUT,
        libvirt.VIR_ERR_SYSTEM_ERROR,
    }
)


class LibvirtError(DriverError):
    pass


class Unreachable(LibvirtError):
    reason: ClassVar[Reason] = Reason.ENGINE_UNREACHABLE
    temporary: ClassVar[bool] = True


class PlacementFailed(LibvirtError):
    reason: ClassVar[Reason] = Reason.PLACEMENT_FAILED


class Conflict(LibvirtError):
    reason: ClassVar[Reason] = Reason.CONFLICT
    temporary: ClassVar[bool] = True


class HypervisorFailed(LibvirtError):
    temporary: ClassVar[bool] = True


class Refused(LibvirtError):
    pass


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
def mapped(what: str) -> Iterator[None]:
    try:
        yield
    except libvirt.libvirtError as e:
        raise classify(e, what) from e


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
