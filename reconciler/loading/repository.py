"""Read a whole fleet repository from a :class:`~reconciler.sources.Tree` into models.

Every file is read, and every problem of layout, YAML or shape becomes a diagnostic; nothing
stops at the first error. Cross-document rules are left to :mod:`reconciler.validation`.
The sites' files of a large fleet are parsed on every core first (:func:`_parse_ahead`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from ..errors import Diagnostic
from ..forking import forked_map, workers
from ..models import API_VERSION, KINDS, Appliance, Cluster, ClusterProfile, Fleet, Site
from ..sources import Tree
from .documents import Doc, Parsed, parse_file, to_model
from .files import ManifestSource, file_references, named_files, read_manifest_files
from .yamldocs import MAX_FILE_BYTES

M = TypeVar("M", bound=BaseModel)
YAML_SUFFIXES = (".yaml", ".yml")
PARSE_AHEAD_FILES = 2000  # fewer files to parse than this: forking costs more than it saves
PARSE_CHUNK = 500


@dataclass
class SiteFiles:
    """Everything in ``sites/<name>/``."""

    name: str
    site: Doc[Site] | None = None
    appliances: list[Doc[Appliance]] = field(default_factory=list)
    clusters: list[Doc[Cluster]] = field(default_factory=list)
    profiles: list[Doc[ClusterProfile]] = field(default_factory=list)


@dataclass
class FleetRepo:
    """A loaded fleet repository: the models that read cleanly, and every problem found."""

    tree: Tree
    fleet: Doc[Fleet] | None = None
    profiles: list[Doc[ClusterProfile]] = field(default_factory=list)
    sites: dict[str, SiteFiles] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # (kind, name) of documents that were found but did not load; rules skip references to
    # them so one mistake is reported once, not again at every use.
    broken: set[tuple[str, str]] = field(default_factory=set)
    # the extra pack folders fleet.yaml declares, read from its text when the document did
    # not load; None when even that failed (packs may then be missing for that reason)
    pack_registries: list[str] | None = field(default_factory=list)
    # the files that manifests name (``file:``), by repository path
    manifest_files: dict[str, ManifestSource] = field(default_factory=dict)

    def all_profiles(self) -> list[Doc[ClusterProfile]]:
        return [*self.profiles, *(p for s in self.sites.values() for p in s.profiles)]

    def all_clusters(self) -> list[Doc[Cluster]]:
        return [c for s in self.sites.values() for c in s.clusters]


# A cache of parsed files by content id (git blob id), shared across revisions by a caller
# that reads many of them, such as the reconciler or plan.
ParseCache = dict[str, Parsed | Diagnostic]


class _Reader:
    def __init__(self, tree: Tree, cache: ParseCache | None) -> None:
        self.tree = tree
        self.cache = cache
        self.diagnostics: list[Diagnostic] = []
        self.broken: set[tuple[str, str]] = set()
        # YAML files where no document belongs: errors, unless a manifest names them (in a
        # document that loaded or not: one mistake is reported once)
        self.strays: list[Diagnostic] = []
        self.named: set[str] = set()
        # files parsed ahead (_parse_ahead), by path, as they come; the paths still to come;
        # and the files' cache keys
        self.ahead: dict[str, Parsed | Diagnostic] = {}
        self.coming: Iterator[list[tuple[str, Parsed | Diagnostic]]] = iter(())
        self.awaited: set[str] = set()
        self.keys: dict[str, str] = {}

    def key(self, path: str) -> str | None:
        """The file's key in the parse cache (its content id); None without a cache."""
        oid: Callable[[str], str] | None = getattr(self.tree, "oid", None)
        if self.cache is None or oid is None:
            return None
        return self.keys.pop(path, None) or oid(path)

    def parse(self, path: str) -> Parsed | None:
        key = self.key(path)
        if key is not None and self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return self._keep(_moved(cached, path))
        while path in self.awaited and path not in self.ahead:
            for done, parsed in next(self.coming):
                self.ahead[done] = parsed
                self.awaited.discard(done)
        result = self.ahead.pop(path, None)
        if result is None:
            result = self._read(path)
        if key is not None and self.cache is not None:
            self.cache[key] = result
        return self._keep(result)

    def _read(self, path: str) -> Parsed | Diagnostic:
        size = self.tree.size(path)
        if size > MAX_FILE_BYTES:
            limit = MAX_FILE_BYTES
            return Diagnostic(path, 1, f"file is {size} bytes, larger than the {limit} byte limit")
        return parse_file(path, self.tree.read(path))

    def _keep(self, result: Parsed | Diagnostic) -> Parsed | None:
        if isinstance(result, Diagnostic):
            self.diagnostics.append(result)
            return None
        return result

    def load(self, path: str, expected: str) -> Doc[Any] | None:
        parsed = self.parse(path)
        if parsed is None:
            return None
        data = parsed.data
        if not isinstance(data, dict):
            self.diagnostics.append(parsed.at((), "a document must be a mapping"))
            return None
        kind = data.get("kind")
        if not isinstance(kind, str) or kind not in KINDS:
            known = ", ".join(KINDS)
            where: tuple[str, ...] = ("kind",) if "kind" in data else ()
            self.diagnostics.append(parsed.at(where, f"unknown kind {kind!r} (known: {known})"))
            return None
        if data.get("apiVersion") != API_VERSION:
            got = data.get("apiVersion")
            self.diagnostics.append(
                parsed.at(("apiVersion",), f"apiVersion must be {API_VERSION} (got {got!r})")
            )
            return None
        if kind != expected:
            self.diagnostics.append(
                parsed.at(("kind",), f"expected kind {expected} in this place (got {kind})")
            )
            return None
        self.named |= named_files(path, data)
        result = to_model(parsed, KINDS[kind])
        if isinstance(result, list):
            self.diagnostics.extend(result)
            self.mark_broken(kind, data)
            return None
        return result

    def mark_broken(self, kind: str, data: Any) -> None:
        metadata = data.get("metadata") if isinstance(data, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if isinstance(name, str):
            self.broken.add((kind, name))


def _moved(result: Parsed | Diagnostic, path: str) -> Parsed | Diagnostic:
    """A cached parse reused for a file with the same content at another path."""
    if isinstance(result, Diagnostic):
        return Diagnostic(path, result.line, result.message) if result.path != path else result
    return result if result.path == path else Parsed(path, result.data, result.lines)


def load_repository(
    tree: Tree,
    *,
    cache: ParseCache | None = None,
    sites: Iterable[str] | None = None,
    processes: int | None = None,
) -> FleetRepo:
    """Read every document of the repository at ``tree``; with ``sites``, only those sites'
    folders (plus fleet.yaml and the fleet profiles). A whole fleet's site files are parsed
    on ``processes`` cores (default: all) when there are many."""
    reader = _Reader(tree, cache)
    repo = FleetRepo(tree=tree)
    # fleet.yaml: exactly one, at the top
    if tree.exists("fleet.yaml"):
        repo.fleet = reader.load("fleet.yaml", "Fleet")
        if repo.fleet is not None:
            repo.pack_registries = list(repo.fleet.model.spec.packRegistries)
        else:
            repo.pack_registries = _declared_registries(tree)
    else:
        reader.diagnostics.append(
            Diagnostic("fleet.yaml", 1, "missing: the repository needs a fleet.yaml (kind Fleet)")
        )
    # profiles/: fleet-wide cluster profiles
    repo.profiles = _load_profiles(reader, "profiles")
    # sites/<site>/: one folder per site
    if sites is not None:
        for name in sites:
            if any(True for _ in tree.files(f"sites/{name}")):
                repo.sites[name] = SiteFiles(name)
    else:
        paths = []
        for path in tree.files("sites"):
            parts = path.split("/")
            if len(parts) < 3:
                if path.endswith(YAML_SUFFIXES):
                    reader.diagnostics.append(
                        Diagnostic(path, 1, "unexpected file: sites/ holds one folder per site")
                    )
                continue
            repo.sites.setdefault(parts[1], SiteFiles(parts[1]))
            if _site_document(parts[2:]):
                paths.append(path)
        reader.coming = _parse_ahead(reader, paths, workers() if processes is None else processes)
    try:
        for name, files in sorted(repo.sites.items()):
            _load_site(reader, name, files)
    finally:
        for _ in reader.coming:  # what no site took (loading stopped): the workers finish
            pass
    # the files manifests name; stray YAML that none names is an error
    references = list(file_references([*repo.all_profiles(), *repo.all_clusters()]))
    repo.manifest_files = read_manifest_files(tree, references, reader.diagnostics)
    reader.diagnostics += [d for d in reader.strays if d.path not in reader.named]
    repo.diagnostics = reader.diagnostics
    repo.broken = reader.broken
    return repo


def _parse_ahead(
    reader: _Reader, paths: list[str], processes: int
) -> Iterator[list[tuple[str, Parsed | Diagnostic]]]:
    """Parse the files at ``paths`` not in the parse cache on ``processes`` cores when there
    are at least PARSE_AHEAD_FILES: each chunk's files as they come, in order (the sites
    load meanwhile), their paths in ``reader.awaited`` until then. Their texts are read
    here (git is not read in a forked process) and inherited by the workers."""
    if processes < 2 or len(paths) < PARSE_AHEAD_FILES:
        return iter(())
    texts: list[tuple[str, bytes]] = []
    for path in paths:
        key = reader.key(path)
        if key is not None:
            reader.keys[path] = key
            if reader.cache is not None and key in reader.cache:
                continue
        data = reader.tree.read(path)
        if len(data) <= MAX_FILE_BYTES:  # a larger one: _read says so
            texts.append((path, data))
    if len(texts) < PARSE_AHEAD_FILES:
        return iter(())

    def parse_chunk(span: tuple[int, int]) -> list[Parsed | Diagnostic]:
        return [parse_file(path, data) for path, data in texts[span[0] : span[1]]]

    spans = [(i, i + PARSE_CHUNK) for i in range(0, len(texts), PARSE_CHUNK)]
    reader.awaited = {path for path, _ in texts}
    return (
        [(path, result) for (path, _), result in zip(texts[a:b], parsed, strict=True)]
        for (a, b), parsed in zip(spans, forked_map(parse_chunk, spans, processes), strict=True)
    )


def _declared_registries(tree: Tree) -> list[str] | None:
    """``spec.packRegistries`` of a fleet.yaml that did not load, when it reads as a list of
    folder names (so a typo elsewhere in fleet.yaml does not lose the packs they hold)."""
    if tree.size("fleet.yaml") > MAX_FILE_BYTES:
        return None
    parsed = parse_file("fleet.yaml", tree.read("fleet.yaml"))
    data = parsed.data if isinstance(parsed, Parsed) else None
    spec = data.get("spec") if isinstance(data, dict) else None
    if not isinstance(spec, dict) or "packRegistries" not in spec:
        return [] if isinstance(spec, dict) else None
    folders = spec["packRegistries"]
    if isinstance(folders, list) and all(isinstance(f, str) and f for f in folders):
        return list(folders)
    return None


def _load_profiles(reader: _Reader, folder: str) -> list[Doc[ClusterProfile]]:
    profiles: list[Doc[ClusterProfile]] = []
    for path in reader.tree.files(folder):
        if not path.endswith(YAML_SUFFIXES):
            continue
        if path.count("/") != folder.count("/") + 1:
            reader.strays.append(
                Diagnostic(path, 1, f"unexpected file: profiles sit directly in {folder}/")
            )
            continue
        doc = reader.load(path, "ClusterProfile")
        if doc is None:
            # named <name>-<version>: references to any name it may hold follow from it
            stem = path.rsplit("/", 1)[1].rsplit(".", 1)[0]
            parts = stem.split("-")
            for i in range(1, len(parts)):
                if parts[i][:1].isdigit():
                    reader.broken.add(("ClusterProfile", "-".join(parts[:i])))
            continue
        meta = doc.model.metadata
        stem = path.rsplit("/", 1)[1].rsplit(".", 1)[0]
        if stem != f"{meta.name}-{meta.version}":
            reader.diagnostics.append(
                doc.at(
                    ("metadata", "name"),
                    f"profile file must be named {meta.name}-{meta.version}.yaml (got {stem})",
                )
            )
            reader.mark_broken("ClusterProfile", doc.data)
            continue
        profiles.append(doc)
    return profiles


_SITE_FOLDERS = {"appliances": "Appliance", "clusters": "Cluster"}


def _site_document(rest: list[str]) -> bool:
    """Whether a site folder's file at ``rest`` (its path below the folder) is a document
    :func:`_load_site` loads."""
    if not rest[-1].endswith(YAML_SUFFIXES):
        return False
    return rest == ["site.yaml"] or (len(rest) == 2 and rest[0] in (*_SITE_FOLDERS, "profiles"))


def _load_site(reader: _Reader, name: str, files: SiteFiles) -> None:
    prefix = f"sites/{name}"
    if reader.tree.exists(f"{prefix}/site.yaml"):
        site = reader.load(f"{prefix}/site.yaml", "Site")
        if site is not None and site.model.metadata.name != name:
            got = site.model.metadata.name
            reader.diagnostics.append(
                site.at(
                    ("metadata", "name"),
                    f"site name must match its folder '{name}' (got '{got}')",
                )
            )
            site = None
        files.site = site
    else:
        reader.diagnostics.append(
            Diagnostic(
                f"{prefix}/site.yaml",
                1,
                f"missing: the site folder '{name}' needs a site.yaml (kind Site)",
            )
        )
    for path in reader.tree.files(prefix):
        rest = path[len(prefix) + 1 :].split("/")
        if not path.endswith(YAML_SUFFIXES) or rest == ["site.yaml"]:
            continue
        if len(rest) == 2 and rest[0] in _SITE_FOLDERS:
            kind = _SITE_FOLDERS[rest[0]]
            doc = _named_after_file(reader, reader.load(path, kind))
            if doc is None:  # named after its file: references to that name follow from it
                reader.broken.add((kind, rest[1].rsplit(".", 1)[0]))
            else:
                target = files.appliances if rest[0] == "appliances" else files.clusters
                target.append(doc)
        elif not (len(rest) == 2 and rest[0] == "profiles"):
            reader.strays.append(
                Diagnostic(
                    path,
                    1,
                    "unexpected file: a site folder holds site.yaml, appliances/, clusters/ "
                    "and profiles/ (and the manifest files they name)",
                )
            )
    files.profiles = _load_profiles(reader, f"{prefix}/profiles")


def _named_after_file(reader: _Reader, doc: Doc[Any] | None) -> Doc[Any] | None:
    """Appliances and clusters are named after their file, so names are unique by layout."""
    if doc is None:
        return None
    stem = doc.path.rsplit("/", 1)[1].rsplit(".", 1)[0]
    name = doc.model.metadata.name
    if stem != name:
        kind = doc.model.kind
        reader.diagnostics.append(
            doc.at(("metadata", "name"), f"{kind} file must be named {name}.yaml (got {stem})")
        )
        reader.mark_broken(kind, doc.data)
        return None
    return doc
