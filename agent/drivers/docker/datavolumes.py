"""A containerized cluster's data volumes for backups and restores (:class:`DockerVolumes`, the
Docker side of :mod:`agent.drivers.datavolumes`).

A volume is read through a helper container that mounts it read-only and is never started,
while every node of the cluster is paused, so the copy is one crash-consistent instant; it is
written back by a helper that empties it, while the nodes are stopped. The helper runs the
node's own image unless one is configured, so nothing has to be pulled.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from agent.contract import ClusterState
from agent.drivers.datavolumes import ROOT, NodeVolume, Sink
from agent.drivers.docker.errors import EngineRefused, absent_is_fine, mapped
from agent.drivers.docker.nodes import DockerNodes
from agent.drivers.nodes import NodeRef

CLEAN = (
    "set -e; cd /data; for f in * .[!.]* ..?*; do "
    'if [ -e "$f" ] || [ -L "$f" ]; then rm -rf -- "$f"; fi; done; '
    '[ -z "$(ls -A /data)" ]'
)


class DockerVolumes:
    def __init__(
        self, *, nodes: DockerNodes, helper_image: str | None = None, start_timeout: float = 60
    ) -> None:
        self._nodes = nodes
        self._client = nodes.client
        self._helper_image = helper_image
        self._start_timeout = start_timeout
        self._images: dict[str, str] = {}  # volume -> image of its node

    def node_volumes(self, cluster: ClusterState) -> tuple[NodeVolume, ...]:
        found = []
        for node in self._nodes.cluster_nodes(cluster):
            for mount in node.mounts:
                self._images[mount.volume] = node.image
                found.append(NodeVolume(node.node, node.pool, node.role, mount.volume, mount.path))
        return tuple(found)

    @contextmanager
    def quiesced(self, cluster: ClusterState) -> Iterator[str]:
        with self._nodes.paused(self._nodes.cluster_nodes(cluster)):
            yield "crash-consistent: the cluster's nodes were paused during the copy"

    @contextmanager
    def stopped(self, cluster: ClusterState) -> Iterator[None]:
        nodes: Sequence[NodeRef] = self._nodes.cluster_nodes(cluster)
        with self._nodes.stopped(nodes, timeout=self._start_timeout):
            yield

    def export(self, volume: NodeVolume, out: Sink) -> None:
        with self._helper(volume, read_only=True, command=["true"]) as helper:
            with mapped(f"read volume {volume.volume}"):
                stream, _ = self._client.api.get_archive(helper, f"/{ROOT}")
                for chunk in stream:
                    out.write(chunk)

    def replace(self, volume: NodeVolume, archive: Path) -> None:
        with self._helper(volume, read_only=False, command=["sh", "-c", CLEAN]) as helper:
            api = self._client.api
            with mapped(f"empty volume {volume.volume}"):
                api.start(helper)
                code = int(api.wait(helper, timeout=int(self._start_timeout))["StatusCode"])
                if code != 0:
                    output = api.logs(helper).decode(errors="replace").strip()[-200:]
                    raise EngineRefused(f"emptying volume {volume.volume} failed: {output}")
            with mapped(f"write volume {volume.volume}"), archive.open("rb") as data:
                if not api.put_archive(helper, "/", data):
                    raise EngineRefused(f"the engine did not extract into {volume.volume}")

    @contextmanager
    def _helper(self, volume: NodeVolume, *, read_only: bool, command: list[str]) -> Iterator[str]:
        image = self._helper_image or self._images.get(volume.volume)
        if image is None:
            raise EngineRefused(f"no helper image for volume {volume.volume}")
        name = f"edgefleet-snapshot-{uuid.uuid4().hex[:10]}"
        mode = "ro" if read_only else "rw"
        with mapped(f"create a helper for {volume.volume}"):
            self._client.containers.create(
                image,
                entrypoint=command[:1],
                command=command[1:],
                name=name,
                labels=self._nodes.labels,
                volumes={volume.volume: {"bind": f"/{ROOT}", "mode": mode}},
                network_mode="none",
            )
        try:
            yield name
        finally:
            with mapped(f"remove helper {name}"), absent_is_fine():
                self._client.api.remove_container(name, force=True)
