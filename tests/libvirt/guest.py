"""A tiny guest for the real-VM test: the host's Debian kernel (``linux-image-amd64``) and an
initramfs built here from ``busybox-static``, booted directly (``<kernel>``/``<initrd>``).

Its init loads the CD-ROM and ISO 9660 modules, then once a second runs the node template
``templates/nodes/manifests-sync.sh`` against the seed CD, exactly as a control-plane node
does, and prints ``edgefleet-test: up <local-hostname from meta-data> manifests: <files>``
on the serial console, so a test sees the guest run, read its seed and follow a media change.
"""

from __future__ import annotations

import gzip
import io
import re
import stat
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SYNC_SCRIPT = REPO_ROOT / "templates" / "nodes" / "manifests-sync.sh"
MARKER = b"edgefleet-test:"
# CD-ROM on SATA, and ISO 9660: modules in Debian's kernel, loaded in this order
MODULES = (
    "drivers/scsi/scsi_common",
    "drivers/scsi/scsi_mod",
    "drivers/cdrom/cdrom",
    "drivers/scsi/sr_mod",
    "drivers/ata/libata",
    "drivers/ata/libahci",
    "drivers/ata/ahci",
    "fs/isofs/isofs",
)
INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /mnt /var/lib
for module in {modules}; do insmod "/lib/modules/$module.ko"; done
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
    }
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
