"""The names the agent gives what it creates, and what a change of a node's spec does to it.
Pure: the same node always gets the same names.

A node's container (or domain) is named after its whole spec: any change makes a new one. Its
data volume is named after what it was made for (the node, its role, its appliance, and for a
virtual machine its data disk's size and pool): a change k3s applies by restart (config,
flags, k3s version, user data, resources) makes a new container on the same volume. A
virtual machine's root disk is named after its image and size: a change of those recreates
the node from its image (k3s starts afresh on it) but keeps its data disk. :func:`effect`
says which, for ``plan`` and the rollout (``reconciler.planning.changes``) as for the agent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from agent.contract import ManifestFile, Mode, Node, digest_of

NETWORK_PREFIX = "edgefleet-"
GENERATION_LENGTH = 8
# The container name, node name plus "-" plus generation, is also the node's hostname.
MAX_NODE_NAME = 63 - 1 - GENERATION_LENGTH

# DNS-1123 labels: they become container names, hostnames and Kubernetes node names.
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# A plain file name: no separators, no leading dot (so neither "." nor ".." nor hidden files).
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")


@dataclass(frozen=True)
class ManifestWrite:
    """One rendered manifest as the file a control-plane node holds (an encrypted one as its
    plaintext: never printed)."""

    filename: str
    content: str = field(repr=False)
    sha256: str


def is_label(name: str) -> bool:
    return bool(_LABEL.fullmatch(name))


def is_plain_file_name(name: str) -> bool:
    return bool(_FILE_NAME.fullmatch(name))


def spec_digest(node: Node, *, default_image: str | None) -> str:
    spec = node.model_dump(mode="json", exclude={"name"})
    spec["image"] = node.image or default_image
    return digest_of(spec)


# restart: a new container (domain) on the node's disks, as k3s applies a new config, flag,
#   version or user data; replace: a virtual machine made again from its image, keeping its
#   data disk (k3s starts afresh: a server joins the cluster again); lose-data: a new, empty
#   data volume (the node's role, appliance or data disk changed)
Effect = Literal["restart", "replace", "lose-data"]
DATA_SUFFIX = "-data"
ROOT_SUFFIX = "-root"


def data_key(node: Node) -> str:
    """What the node's data volume is made for; a change makes a new, empty one."""
    placement = node.placement
    resources = node.resources
    return digest_of(
        {
            "node": node.name,
            "pool": node.pool,
            "role": node.role,
            "appliance": node.appliance,
            "dataDiskGiB": resources.dataDiskGiB if resources else None,
            "dataStoragePool": placement.dataStoragePool if placement else None,
        }
    )


def root_key(node: Node, *, default_image: str | None) -> str:
    """What a virtual machine's root disk is cloned from and where; a change clones it anew."""
    placement = node.placement
    resources = node.resources
    return digest_of(
        {
            "data": data_key(node),
            "image": node.image or default_image,
            "rootDiskGiB": resources.rootDiskGiB if resources else None,
            "imageStoragePool": placement.imageStoragePool if placement else None,
            "targetStoragePool": placement.targetStoragePool if placement else None,
        }
    )


def effect(
    before: Node, after: Node, *, mode: Mode, default_image: str | None = None
) -> Effect | None:
    """What going from ``before`` to ``after`` (the same node) does to it; None: nothing."""
    if spec_digest(before, default_image=default_image) == spec_digest(
        after, default_image=default_image
    ):
        return None
    if data_key(before) != data_key(after):
        return "lose-data"
    if mode == "virtualized" and root_key(before, default_image=default_image) != root_key(
        after, default_image=default_image
    ):
        return "replace"
    return "restart"


def generation(spec: str) -> str:
    return spec.removeprefix("sha256:")[:GENERATION_LENGTH]


def container_name(node: str, spec: str) -> str:
    return f"{node}-{generation(spec)}"


def volume_name(container: str) -> str:
    """The data volume of a container made before volumes outlived containers."""
    return f"{container}{DATA_SUFFIX}"


def data_volume(node: Node) -> str:
    """The node's data volume: it outlives the node's containers while :func:`data_key`
    stays."""
    return f"{node.name}-{generation(data_key(node))}{DATA_SUFFIX}"


def root_volume(node: Node, *, default_image: str | None) -> str:
    """A virtual machine's root disk, while :func:`root_key` stays."""
    return f"{node.name}-{generation(root_key(node, default_image=default_image))}{ROOT_SUFFIX}"


def volume_node(volume: str) -> str | None:
    """The node a volume named by this module belongs to (``<node>-<generation>-data``,
    ``-root``); None for another name."""
    for suffix in (DATA_SUFFIX, ROOT_SUFFIX):
        if volume.endswith(suffix):
            head, _, gen = volume.removesuffix(suffix).rpartition("-")
            if head and len(gen) == GENERATION_LENGTH:
                return head
    return None


def network_name(cluster: str) -> str:
    return f"{NETWORK_PREFIX}{cluster}"


def content_sha256(content: str | bytes) -> str:
    data = content.encode() if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


def manifest_files(
    manifests: Sequence[ManifestFile], opened: Mapping[int, str] | None = None
) -> tuple[ManifestWrite, ...]:
    """``NN-<pack>-<name>`` in manifest order, as k3s applies its auto-deploy folder sorted.
    An encrypted manifest is written as its plaintext in ``opened`` (by position from 0)."""
    width = max(2, len(str(len(manifests))))
    files = []
    for index, manifest in enumerate(manifests):
        content = manifest.content
        if manifest.encryption is not None:
            if opened is None or index not in opened:
                raise ValueError(f"manifest {manifest.name!r} is encrypted and was not opened")
            content = opened[index]
        files.append(
            ManifestWrite(
                filename=f"{index + 1:0{width}d}-{manifest.pack}-{manifest.name}",
                content=content,
                sha256=content_sha256(content),
            )
        )
    return tuple(files)
