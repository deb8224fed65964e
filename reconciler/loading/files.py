"""The repository files that documents name as manifests (``manifests[].file``): where each
name points, relative to its document's folder and never out of the repository or into a
hidden folder, and the text read there. A SOPS file is marked, to pass through encrypted."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.secrets.documents import is_sops

from ..errors import Diagnostic
from ..models import Cluster, ClusterProfile, Manifest, ManifestLayer, PackLayer
from ..sources import DirectoryTree, Tree
from .documents import Doc
from .yamldocs import MAX_FILE_BYTES

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ManifestSource:
    path: str  # in the repository
    text: str
    sops: bool  # a SOPS document: never a template, never decrypted here


@dataclass(frozen=True)
class FileReference:
    """A manifest of a document that names a file; ``path`` is None when it points out of
    the repository (the loader reports it)."""

    doc: Doc[Any]
    loc: Loc  # of the manifest in its document
    manifest: Manifest
    path: str | None

    def at(self, message: str) -> Diagnostic:
        return self.doc.at((*self.loc, "file"), message)


def locate(document: str, file: str) -> str:
    """The repository path ``file`` names from the document at ``document``; raises
    ValueError with the reason when it leaves the repository or enters a hidden folder."""
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(document), file))
    if joined == ".." or joined.startswith(("../", "/")):
        raise ValueError(f"manifest file '{file}' is outside the repository")
    if any(part.startswith(".") for part in joined.split("/")):
        raise ValueError(f"manifest file '{file}' is in a hidden folder or is hidden")
    return joined


def manifests_of(doc: Doc[Any]) -> Iterator[tuple[Loc, Manifest]]:
    """The raw manifests a profile (in its layers) or a cluster declares, with their places."""
    if isinstance(doc.model, Cluster):
        for j, manifest in enumerate(doc.model.spec.manifests):
            yield ("spec", "manifests", j), manifest
    elif isinstance(doc.model, ClusterProfile):
        for i, layer in enumerate(doc.model.spec.layers):
            if isinstance(layer, PackLayer | ManifestLayer):
                for j, manifest in enumerate(layer.manifests):
                    yield ("spec", "layers", i, "manifests", j), manifest


def file_references(docs: Iterable[Doc[Any]]) -> Iterator[FileReference]:
    """The manifests of ``docs`` (profiles and clusters) that name a file."""
    for doc in docs:
        for loc, manifest in manifests_of(doc):
            if manifest.file is None:
                continue
            try:
                path: str | None = locate(doc.path, manifest.file)
            except ValueError:
                path = None
            yield FileReference(doc, loc, manifest, path)


def named_files(document: str, data: Any) -> set[str]:
    """The paths a document's ``manifests[].file`` name, read from its data whether or not it
    is a valid document (paths that leave the repository left out)."""
    spec = data.get("spec") if isinstance(data, dict) else None
    if not isinstance(spec, dict):
        return set()
    lists = [spec.get("manifests")]
    layers = spec.get("layers")
    if isinstance(layers, list):
        lists += [layer.get("manifests") for layer in layers if isinstance(layer, dict)]
    found = set()
    for manifests in lists:
        for manifest in manifests if isinstance(manifests, list) else ():
            file = manifest.get("file") if isinstance(manifest, dict) else None
            if isinstance(file, str):
                try:
                    found.add(locate(document, file))
                except ValueError:
                    pass
    return found


def read_manifest_files(
    tree: Tree, references: Iterable[FileReference], diagnostics: list[Diagnostic]
) -> dict[str, ManifestSource]:
    """The text of every file the references name, by path; each problem is one diagnostic
    at the ``file:`` line that names it."""
    found: dict[str, ManifestSource] = {}
    failed: dict[str, str] = {}
    for ref in references:
        assert ref.manifest.file is not None
        if ref.path is None:
            try:
                locate(ref.doc.path, ref.manifest.file)
            except ValueError as e:
                diagnostics.append(ref.at(str(e)))
            continue
        if ref.path not in found and ref.path not in failed:
            source = _read(tree, ref.path)
            if isinstance(source, str):
                failed[ref.path] = source
            else:
                found[ref.path] = source
        if ref.path in failed:
            diagnostics.append(ref.at(f"manifest file '{ref.manifest.file}' {failed[ref.path]}"))
    return found


def _read(tree: Tree, path: str) -> ManifestSource | str:
    if not tree.exists(path) or not _inside(tree, path):
        return f"does not exist ({path})"
    size = tree.size(path)
    if size > MAX_FILE_BYTES:
        return f"is {size} bytes, larger than the {MAX_FILE_BYTES} byte limit"
    try:
        text = tree.read(path).decode()
    except UnicodeDecodeError:
        return "is not UTF-8 text"
    return ManifestSource(path, text, is_sops(text))


def _inside(tree: Tree, path: str) -> bool:
    """A folder's file, links followed, is still in the folder (git trees hold no links
    that are followed)."""
    if not isinstance(tree, DirectoryTree):
        return True
    root = Path(tree.root).resolve()
    return (root / path).resolve().is_relative_to(root)
