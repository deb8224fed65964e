"""Which sites a change between two commits can affect, found without reading the others.

The tree diff names the changed paths; a change inside ``sites/<s>/`` affects ``s``; a change
to ``fleet.yaml`` affects every site; a changed fleet profile affects the sites whose clusters
name it, and a changed pack the sites whose profiles install it. Any other changed file may be
a manifest file (``file:``) that a fleet profile or a site's document names: those that name
it are the candidates. Documents are first filtered by a substring search of their bytes, so
only likely users are parsed. A per-site input digest then tells, for each candidate, whether
its inputs really differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ..loading import FleetRepo, parse_file
from ..loading.files import file_references
from ..packs import PackRegistry
from ..sources import GitTree, Tree
from ..validation import FleetIndex, resolve_cluster


def _pack_roots(tree: Tree) -> list[str]:
    roots = ["packs"]
    if tree.exists("fleet.yaml"):
        parsed = parse_file("fleet.yaml", tree.read("fleet.yaml"))
        data = getattr(parsed, "data", None)
        spec = data.get("spec") if isinstance(data, dict) else None
        extra = spec.get("packRegistries") if isinstance(spec, dict) else None
        if isinstance(extra, list):
            roots += [str(r).strip("/") for r in extra]
    return roots


def candidate_sites(paths: set[str], trees: Iterable[GitTree]) -> set[str]:
    """Sites whose inputs a change to ``paths`` may touch, in either tree."""
    trees = list(trees)
    sites: set[str] = set()
    profile_names: set[str] = set()
    pack_names: set[str] = set()
    file_names: set[str] = set()
    roots = {root for tree in trees for root in _pack_roots(tree)}
    for path in paths:
        parts = path.split("/")
        if path == "fleet.yaml":
            return {name for tree in trees for name in site_names(tree)}
        if parts[0] == "sites" and len(parts) > 2:
            sites.add(parts[1])
        elif parts[0] == "profiles" and len(parts) == 2:
            profile_names.add(parts[1].rsplit(".", 1)[0].rsplit("-", 1)[0])
        elif any(path.startswith(root + "/") for root in roots):
            for root in roots:
                if path.startswith(root + "/"):
                    pack_names.add(path[len(root) + 1 :].split("/")[0])
        else:
            file_names.add(parts[-1])
    if file_names:
        for tree in trees:
            for profile in tree.files("profiles"):
                if profile.count("/") == 1 and _mentions(tree, profile, file_names):
                    profile_names.add(profile.rsplit("/", 1)[1].rsplit(".", 1)[0].rsplit("-", 1)[0])
            for name in site_names(tree):
                documents = [
                    *tree.files(f"sites/{name}/clusters"),
                    *tree.files(f"sites/{name}/profiles"),
                ]
                if any(_mentions(tree, d, file_names) for d in documents):
                    sites.add(name)
    if pack_names:
        for tree in trees:
            for profile in tree.files("profiles"):
                if _mentions(tree, profile, pack_names):
                    profile_names.add(profile.rsplit("/", 1)[1].rsplit(".", 1)[0].rsplit("-", 1)[0])
            for name in site_names(tree):
                if any(
                    _mentions(tree, p, pack_names) for p in tree.files(f"sites/{name}/profiles")
                ):
                    sites.add(name)
    if profile_names:
        for tree in trees:
            for name in site_names(tree):
                clusters = tree.files(f"sites/{name}/clusters")
                if any(_mentions(tree, c, profile_names) for c in clusters):
                    sites.add(name)
    return sites


def _mentions(tree: Tree, path: str, words: set[str]) -> bool:
    data = tree.read(path)
    return any(word.encode() in data for word in words)


def site_names(tree: Tree) -> list[str]:
    if isinstance(tree, GitTree):
        try:
            sites = tree.root["sites"]
        except KeyError:
            return []
        return sorted(e.name for e in sites if e.type_str == "tree" and e.name)  # type: ignore[union-attr]
    return sorted({p.split("/")[1] for p in tree.files("sites") if p.count("/") >= 2})


def input_digest(repo: FleetRepo, site: str, index: FleetIndex, registry: PackRegistry) -> str:
    """A digest of everything a site's rendering reads: its folder, fleet.yaml, the profile
    files and pack folders its clusters use. Equal digests render equal documents."""
    tree = repo.tree
    parts = [f"fleet.yaml={_oid(tree, 'fleet.yaml')}", f"site={_oid(tree, f'sites/{site}')}"]
    files = repo.sites.get(site)
    if files is not None:
        for doc in files.clusters:
            resolved, _ = resolve_cluster(files, doc, index, registry)
            if resolved is None:
                parts.append(f"unresolved={doc.path}")
                continue
            for rl in resolved.layers:
                parts.append(f"profile={rl.profile.path}={_oid(tree, rl.profile.path)}")
                if rl.pack is not None:
                    parts.append(f"pack={rl.pack.folder}={_oid(rl.pack.tree, rl.pack.folder)}")
            profiles = {rl.profile.path: rl.profile for rl in resolved.layers}
            for ref in file_references([*profiles.values(), doc]):
                if ref.path is not None:
                    parts.append(f"file={ref.path}={_oid(tree, ref.path)}")
    return hashlib.sha256("\n".join(sorted(set(parts))).encode()).hexdigest()


def _oid(tree: Tree, path: str) -> str:
    if not isinstance(tree, GitTree):
        return "builtin"  # the built-in registry does not change between commits
    try:
        return tree.oid(path)
    except FileNotFoundError:
        return "-"
