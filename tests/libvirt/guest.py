"""A tiny guest for the real-VM test: the host's Debian kernel (``linux-image-amd64``) and an
initramfs built here from ``busybox-static`` and ``qemu-guest-agent``, booted directly
(``<kernel>``/``<initrd>``).

Its init loads the CD-ROM, ISO 9660 and virtio modules (PCI, console, block: the data disk is
``/dev/vdb`` when the domain has one; network: its NICs are ``eth0`` on, unconfigured), then
starts the QEMU guest agent (``/usr/sbin/qemu-ga`` with the shared libraries ``ldd`` lists)
in the background on the virtio port named
``org.qemu.guest_agent.0``, and prints ``edgefleet-test: agent /dev/<port>`` once. Once a
second it runs the node template ``templates/nodes/manifests-sync.sh`` against the seed CD,
exactly as a control-plane node does, and prints ``edgefleet-test: up <local-hostname from
meta-data> manifests: <files>`` on the serial console, so a test sees the guest run, read its
seed and follow a media change.

Through libvirt's guest agent calls the host can then ping the guest, run busybox commands in
it (``guest-exec`` finds ``sh``, ``cat``, ``dd``, ``test`` on ``PATH``), freeze and thaw its
filesystems (none to freeze: the root is the initramfs) and reboot it: ``guest-shutdown``
runs ``/sbin/shutdown -h -r +0 ...``, here a script that syncs and reboots at once.

For the day-2 tests it also carries stand-ins for what a node image has and this guest has
not: ``/usr/sbin/pkg`` (a package manager's upgrade, ``tests/daytwo/tools/pkg``) with an
``/etc/os-release``, and ``/usr/bin/k3s`` (k3s's containerd client, ``tests/libvirt/k3s``)
with the genuine scan reports the stand-ins print under ``/reports``.
"""

from __future__ import annotations

import gzip
import io
import re
import stat
import subprocess
from pathlib import Path

from tests.support.daytwo import REPORTS, STAND_IN_REPORTS

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
DAYTWO = REPO_ROOT / "tests" / "daytwo"
OS_RELEASE = 'NAME="Edge Test OS"\nID=edgetest\nVERSION_ID=3.19.0\n'
SYNC_SCRIPT = REPO_ROOT / "templates" / "nodes" / "manifests-sync.sh"
MARKER = b"edgefleet-test:"
QEMU_GA = "/usr/sbin/qemu-ga"
DYNAMIC_LOADER = "/lib64/ld-linux-x86-64.so.2"
# modules in Debian's kernel, loaded in this order (modules.dep): CD-ROM on SATA and ISO 9660,
# then virtio on PCI, its serial ports (the guest agent's channel), its disks and NICs
MODULES = (
    "drivers/scsi/scsi_common",
    "drivers/scsi/scsi_mod",
    "drivers/cdrom/cdrom",
    "drivers/scsi/sr_mod",
    "drivers/ata/libata",
    "drivers/ata/libahci",
    "drivers/ata/ahci",
    "fs/isofs/isofs",
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci",
    "drivers/char/virtio_console",
    "drivers/block/virtio_blk",
    "net/core/failover",
    "drivers/net/net_failover",
    "drivers/net/virtio_net",
)
INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /mnt /var/lib /run
for module in {modules}; do insmod "/lib/modules/$module.ko"; done
sh /edgefleet/guest-agent.sh &
while true; do
  if EDGEFLEET_SEED=/dev/sr0 sh /edgefleet/manifests-sync.sh 2>/tmp/sync.err; then
    mount -t iso9660 -o ro /dev/sr0 /mnt
    host="$(sed -n 's/^local-hostname: "\\(.*\\)"$/\\1/p' /mnt/meta-data)"
    umount /mnt
    files="$(ls /var/lib/rancher/k3s/server/manifests | tr '\\n' ' ')"
    echo "edgefleet-test: up $host manifests: $files"
  else
    echo "edgefleet-test: no seed: $(head -c 200 /tmp/sync.err)"
  fi
  sleep 1
done
"""
# started in the background by init: the seed loop does not wait for the agent's port. A
# guest under TCG on a loaded host can take long to show its port, and qemu-ga can exit: wait
# for the port as long as it takes and start qemu-ga again, saying so on the console. A test
# that silences the agent on purpose creates AGENT_OFF first: then it stays down.
AGENT_OFF = "/tmp/qga.off"
GUEST_AGENT = """#!/bin/busybox sh
find_port() {
  for name in /sys/class/virtio-ports/*/name; do
    if [ "$(cat "$name" 2>/dev/null)" = org.qemu.guest_agent.0 ]; then
      port="$(basename "$(dirname "$name")")"
      if [ -c "/dev/$port" ]; then echo "$port"; return 0; fi
    fi
  done
  return 1
}
mkdir -p /tmp/qga
waited=0
while true; do
  if port="$(find_port)"; then
    echo "edgefleet-test: agent /dev/$port"
    qemu-ga -m virtio-serial -p "/dev/$port" -t /tmp/qga 2>/tmp/qga.err
    echo "edgefleet-test: agent exited with $?: $(tail -c 300 /tmp/qga.err)"
    if [ -e @AGENT_OFF@ ]; then echo "edgefleet-test: agent switched off"; exit 0; fi
    sleep 1
  else
    waited=$((waited + 1))
    if [ $((waited % 50)) -eq 0 ]; then
      echo "edgefleet-test: agent: no virtio port org.qemu.guest_agent.0 yet"
    fi
    sleep 0.2
  fi
done
""".replace("@AGENT_OFF@", AGENT_OFF)
# qemu-ga's guest-shutdown runs "/sbin/shutdown -h -r|-H|-P +0 'hypervisor initiated
# shutdown'"; init is a shell script here, not one that shuts down: act at once
SHUTDOWN = """#!/bin/busybox sh
/bin/busybox sync
case " $* " in
  *" -r "*) exec /bin/busybox reboot -f ;;
  *" -H "*) exec /bin/busybox halt -f ;;
  *) exec /bin/busybox poweroff -f ;;
esac
"""


class GuestUnavailable(Exception):
    pass


def find_kernel() -> tuple[Path, str]:
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    for kernel in reversed(kernels):
        version = kernel.name.removeprefix("vmlinuz-")
        if (Path("/lib/modules") / version / "kernel").is_dir():
            return kernel, version
    raise GuestUnavailable("no Debian kernel with modules in /boot (linux-image-amd64)")


def build_initrd(version: str, out: Path) -> Path:
    busybox = _static_busybox()
    modules = Path("/lib/modules") / version / "kernel"
    files: dict[str, tuple[int, bytes]] = {
        "bin/busybox": (0o755, busybox.read_bytes()),
        "init": (0o755, INIT.format(modules=" ".join(m.split("/")[-1] for m in MODULES)).encode()),
        "edgefleet/manifests-sync.sh": (0o755, SYNC_SCRIPT.read_bytes()),
        "edgefleet/guest-agent.sh": (0o755, GUEST_AGENT.encode()),
        "sbin/shutdown": (0o755, SHUTDOWN.encode()),
        # stand-ins for what a node image has and this guest has not (see test_daytwo.py)
        "usr/sbin/pkg": (0o755, (DAYTWO / "tools" / "pkg").read_bytes()),
        "etc/os-release": (0o644, OS_RELEASE.encode()),
        "usr/bin/k3s": (0o755, (HERE / "k3s").read_bytes()),
        "tools/sonobuoy": (0o755, (DAYTWO / "tools" / "sonobuoy").read_bytes()),
    }
    for report in STAND_IN_REPORTS.values():
        files[f"reports/{report}"] = (0o644, (REPORTS / report).read_bytes())
    for program, mode in _guest_agent():
        files[program.lstrip("/")] = (mode, Path(program).resolve().read_bytes())
    for module in MODULES:
        path = modules / f"{module}.ko"
        if not path.exists():
            raise GuestUnavailable(f"kernel module {path} is missing")
        files[f"lib/modules/{path.name}"] = (0o644, path.read_bytes())
    folders = sorted(
        {"/".join(name.split("/")[:i]) for name in files for i in range(1, name.count("/") + 1)}
        | {"dev", "proc", "sys"}
    )
    archive = io.BytesIO()
    inode = 1
    for folder in folders:
        _entry(archive, folder, stat.S_IFDIR | 0o755, b"", inode)
        inode += 1
    for name, (mode, data) in sorted(files.items()):
        _entry(archive, name, stat.S_IFREG | mode, data, inode)
        inode += 1
    _entry(archive, "TRAILER!!!", 0, b"", 0)
    out.write_bytes(gzip.compress(archive.getvalue()))
    out.chmod(0o644)
    return out


def _entry(archive: io.BytesIO, name: str, mode: int, data: bytes, inode: int) -> None:
    """One member of a cpio archive in the "newc" format, as the kernel unpacks it."""
    encoded = name.encode() + b"\0"
    fields = (inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    archive.write(b"070701" + b"".join(f"{value:08x}".encode() for value in fields))
    archive.write(encoded)
    archive.write(b"\0" * (-(110 + len(encoded)) % 4))
    archive.write(data)
    archive.write(b"\0" * (-len(data) % 4))


def _static_busybox() -> Path:
    listed = subprocess.run(
        ["dpkg", "-L", "busybox-static"], capture_output=True, text=True, check=False
    )
    for line in listed.stdout.splitlines():
        if re.search(r"/bin/busybox$", line) and Path(line).exists():
            return Path(line)
    raise GuestUnavailable("the Debian package busybox-static is not installed")


def _guest_agent() -> list[tuple[str, int]]:
    """(path, mode) of qemu-ga and of everything it loads: the shared libraries ``ldd`` lists
    and the dynamic loader, each to be stored at that path with its (symlink-resolved)
    content."""
    listed = subprocess.run(
        ["dpkg", "-L", "qemu-guest-agent"], capture_output=True, text=True, check=False
    )
    if QEMU_GA not in listed.stdout.splitlines() or not Path(QEMU_GA).exists():
        raise GuestUnavailable("the Debian package qemu-guest-agent is not installed")
    ldd = subprocess.run(["ldd", QEMU_GA], capture_output=True, text=True, check=False)
    if ldd.returncode != 0:
        raise GuestUnavailable(f"ldd {QEMU_GA} failed: {ldd.stderr.strip() or ldd.stdout}")
    found: dict[str, int] = {QEMU_GA: 0o755, DYNAMIC_LOADER: 0o755}
    for line in ldd.stdout.splitlines():
        if "not found" in line:
            raise GuestUnavailable(f"{QEMU_GA} needs a missing library: {line.strip()}")
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)", line)
        if match:
            found.setdefault(match.group(1), 0o644)
    for path in found:
        if not Path(path).exists():
            raise GuestUnavailable(f"{path}, which {QEMU_GA} loads, is missing")
    return sorted(found.items())
