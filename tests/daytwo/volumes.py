"""A node's data volume as a person comparing two clusters would read it (``docker cp``):
every entry's type, mode, owner, link target, content digest and file time, by path. Data is
written through ``docker exec``, as a workload would."""

from __future__ import annotations

import hashlib
import io
import tarfile

from tests.support.daytwo import Site

DATA = "/var/lib/rancher/k3s"
# what k3s keeps in its data folder, and a persistent volume of the local-path provisioner
WRITE = """
set -e
cd /var/lib/rancher/k3s
mkdir -p server/db server/cred storage/pvc-@PVC@_pos_orders storage/empty-dir
head -c 300000 /dev/urandom > server/db/state.db
printf 'journal @PVC@\\n' > server/db/state.db-wal
head -c 70000 /dev/urandom > storage/pvc-@PVC@_pos_orders/orders.bin
printf 'secret\\n' > server/token
chmod 600 server/token
chown 1000:1000 storage/pvc-@PVC@_pos_orders/orders.bin
ln -sf ../db/state.db server/cred/current-db
"""

Entry = tuple[object, ...]


def write_data(site: Site, node: str, pvc: str) -> None:
    site.exec(node, "sh", "-c", WRITE.replace("@PVC@", pvc))


def tree(site: Site, node: str) -> dict[str, Entry]:
    """{path: (type, mode, uid, gid, link, sha256, mtime)} of the node's data volume."""
    container = site.agent.node_container(node)
    stream, _ = site.agent.client.api.get_archive(container.id, DATA)
    entries: dict[str, Entry] = {}
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        for member in archive:
            data = archive.extractfile(member) if member.isfile() else None
            digest = hashlib.sha256(data.read()).hexdigest() if data else ""
            entries[member.name] = (
                member.type,
                member.mode,
                member.uid,
                member.gid,
                member.linkname,
                digest,
                member.mtime if member.isfile() else 0,
            )
    return entries
