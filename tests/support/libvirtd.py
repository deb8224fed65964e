"""The libvirtd (qemu driver) the tests use, made on this machine: the system one when it
answers, else ``virtlogd`` and ``libvirtd`` started for the session with their own socket, pid
and log files. :func:`guest_accelerator` boots the test guest once with KVM and falls back to
TCG where nested KVM starts no guest kernel.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import libvirt

from agent.drivers.libvirt import DirectBoot
from tests.support.services import install_missing_packages

SYSTEM_SOCKET = Path("/var/run/libvirt/libvirt-sock")


class DaemonUnavailable(Exception):
    """No libvirtd answers and none could be started; the message says why."""


@dataclass
class Daemon:
    uri: str
    folder: Path | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def connect(self) -> libvirt.virConnect:
        return libvirt.open(self.uri)


@dataclass(frozen=True)
class Guest:
    """The test guest's kernel and initrd, and the accelerator that boots it."""

    boot: DirectBoot
    domain_type: str
    why: str


def find_or_start_daemon() -> Daemon:
    libvirt.registerErrorHandler(lambda context, error: None, None)
    if SYSTEM_SOCKET.exists() and _answers("qemu:///system"):
        return Daemon("qemu:///system")
    install_missing_packages("libvirtd", timeout=900)
    libvirtd, virtlogd = shutil.which("libvirtd"), shutil.which("virtlogd")
    if libvirtd is None or virtlogd is None:
        raise DaemonUnavailable("no libvirtd answers and libvirt-daemon-system is not installed")
    if os.geteuid() != 0:
        raise DaemonUnavailable("starting libvirtd with the qemu system driver needs root")
    folder = Path(tempfile.mkdtemp(prefix="edgefleet-libvirtd-"))
    (folder / "libvirtd.conf").write_text(
        f'unix_sock_dir = "{folder}"\n'
        'unix_sock_rw_perms = "0700"\n'
        'unix_sock_ro_perms = "0700"\n'
        'auth_unix_rw = "none"\n'
        'auth_unix_ro = "none"\n'
        f'log_outputs = "3:file:{folder}/libvirtd.log"\n'
    )
    daemon = Daemon(f"qemu+unix:///system?socket={folder}/libvirt-sock", folder)
    for command, log in (
        ([virtlogd, f"--pid-file={folder / 'virtlogd.pid'}"], "virtlogd.out"),
        (
            [
                libvirtd,
                f"--config={folder / 'libvirtd.conf'}",
                f"--pid-file={folder / 'libvirtd.pid'}",
            ],
            "libvirtd.out",
        ),
    ):
        with open(folder / log, "wb") as out:
            daemon.processes.append(
                subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    deadline = time.monotonic() + 30
    while not _answers(daemon.uri):
        if any(p.poll() is not None for p in daemon.processes) or time.monotonic() > deadline:
            tail = _tail(folder / "libvirtd.out") + _tail(folder / "libvirtd.log")
            stop_daemon(daemon)
            raise DaemonUnavailable(f"libvirtd did not start: {' | '.join(tail)}")
        time.sleep(0.2)
    return daemon


def stop_daemon(daemon: Daemon) -> None:
    """Stop the daemons this module started and remove their folder; leave any other."""
    for process in reversed(daemon.processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    if daemon.folder is not None:
        shutil.rmtree(daemon.folder, ignore_errors=True)


def guest_accelerator(kernel: Path, initrd: Path, *, marker: bytes) -> tuple[str, str]:
    """("kvm" | "qemu", why): KVM when it boots the test guest to ``marker`` within a few
    seconds, else TCG."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None or not Path("/dev/kvm").exists():
        return "qemu", "no /dev/kvm or qemu-system-x86_64: the guests run under TCG"
    command = [
        *(qemu, "-accel", "kvm", "-m", "256", "-display", "none", "-no-reboot"),
        *("-nodefaults", "-serial", "stdio", "-kernel", str(kernel), "-initrd", str(initrd)),
        *("-append", "console=ttyS0 quiet"),
    ]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        output, _ = process.communicate(timeout=8)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    if marker in output:
        return "kvm", "KVM boots the guest"
    return "qemu", "KVM starts no guest kernel on this (nested) host: the guests run under TCG"


def _answers(uri: str) -> bool:
    try:
        connection = libvirt.open(uri)
    except libvirt.libvirtError:
        return False
    try:
        return bool(connection.getVersion())
    finally:
        connection.close()


def _tail(path: Path) -> list[str]:
    if not path.exists():
        return []
    return path.read_text(errors="replace").strip().splitlines()[-2:]
