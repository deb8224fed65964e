"""The names the agent gives what it creates, and a node's spec digest, which changes exactly
when the node must be replaced. Pure: the same node always gets the same names."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agent.contract import ManifestFile, Node, digest_of

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


def spec_digest(node: Node, *, default_image: str) -> str:
    spec = node.model_dump(mode="json", exclude={"name"})
    spec["image"] = node.image or default_image
    return digest_of(spec)


def generation(spec: str) -> str:
    return spec.removeprefix("sha256:")[:GENERATION_LENGTH]


def container_name(node: str, spec: str) -> str:
    return f"{node}-{generation(spec)}"


def volume_name(container: str) -> str:
    return f"{container}-data"


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
