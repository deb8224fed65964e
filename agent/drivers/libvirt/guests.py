"""The QEMU guest agent of a domain: programs run with ``guest-exec``, the boot ID, the
addresses the guest reports. libvirt's errors come out as they are; the caller maps them."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import libvirt
import libvirt_qemu

from agent.clocks import Clock
from agent.drivers import TimedOut

CHANNEL = "org.qemu.guest_agent.0"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
POLL_SECONDS = 0.2
COMMAND_TIMEOUT = 10  # seconds libvirt waits for the agent's answer to one command
# libvirt's codes for "the guest agent is not there (yet) or does not answer"
SILENT = frozenset(
    {
        libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
        libvirt.VIR_ERR_AGENT_UNSYNCED,
        libvirt.VIR_ERR_OPERATION_TIMEOUT,
        libvirt.VIR_ERR_OPERATION_INVALID,  # domain not running
    }
)


class ExecTimedOut(TimedOut):
    """The program outlived its time (it keeps running in the guest)."""


@dataclass(frozen=True)
class Finished:
    code: int
    stdout: bytes
    stderr: bytes


class GuestAgent:
    """The guest agent of one domain."""

    def __init__(self, domain: Any, *, clock: Clock) -> None:
        self._domain = domain
        self._clock = clock

    def command(self, execute: str, arguments: dict[str, Any] | None = None) -> Any:
        """One guest agent command; its ``return`` value."""
        message: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            message["arguments"] = arguments
        answer = libvirt_qemu.qemuAgentCommand(
            self._domain, json.dumps(message), COMMAND_TIMEOUT, 0
        )
        return json.loads(answer).get("return")

    def answers(self) -> bool:
        try:
            self.command("guest-ping")
        except libvirt.libvirtError as e:
            if e.get_error_code() in SILENT:
                return False
            raise
        return True

    def execute(self, argv: Sequence[str], *, timeout: float) -> Finished:
        """Run ``argv`` (``argv[0]`` found on the guest's PATH) to its end."""
        started = self.command(
            "guest-exec",
            {"path": argv[0], "arg": list(argv[1:]), "capture-output": True},
        )
        pid = int(started["pid"])
        deadline = self._clock.monotonic() + timeout
        while not (status := self.command("guest-exec-status", {"pid": pid}))["exited"]:
            if self._clock.monotonic() >= deadline:
                raise ExecTimedOut(f"{argv[0]} still running after {timeout:g}s")
            self._clock.sleep(POLL_SECONDS)
        code = status.get("exitcode")
        if code is None:  # killed by a signal
            code = 128 + int(status.get("signal", 0))
        return Finished(
            int(code),
            base64.b64decode(status.get("out-data", "")),
            base64.b64decode(status.get("err-data", "")),
        )

    def boot_id(self) -> str:
        found = self.execute(["cat", BOOT_ID], timeout=COMMAND_TIMEOUT)
        return found.stdout.decode(errors="replace").strip()

    def addresses(self) -> tuple[str, ...]:
        """The node's IPv4 addresses, loopback left out."""
        source = libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT
        found = self._domain.interfaceAddresses(source, 0) or {}
        return tuple(
            str(address["addr"])
            for name, interface in sorted(found.items())
            if name != "lo"
            for address in interface.get("addrs") or []
            if address.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4
            and not str(address.get("addr", "")).startswith("127.")
        )
