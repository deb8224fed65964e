"""Index pack versions from several pack roots and resolve exact versions and trains."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from packaging.version import InvalidVersion, Version

from ..errors import Diagnostic
from ..loading import Doc, parse_file, to_model
from ..models import NETWORK_KEYS, PackMeta, Preset, PresetsFile
from ..sources import Tree


def _templates() -> Path:
    """The installed ``edgefleet_templates`` data package (``templates/`` in a checkout)."""
    found = resources.files("edgefleet_templates")
    if not isinstance(found, Path):  # a zipped install: the registry reads folders
        raise RuntimeError(f"the built-in packs must be installed as files, not in {found}")
    return found


# The built-in registry: error messages name its files from the folder above the templates
# ("templates/packs/k3s/1.30.6/values.yaml" in a checkout, "edgefleet_templates/packs/..."
# when installed).
BUILTIN_ROOT = _templates().parent
BUILTIN_FOLDER = f"{_templates().name}/packs"

_TRAIN = re.compile(r"^(\d+(?:\.\d+)*)\.x$")


def is_train(spec: str) -> bool:
    return bool(_TRAIN.match(spec))


@dataclass(frozen=True)
class PackVersion:
    """One pack version folder and its metadata."""

    name: str
    version: str
    tree: Tree
    folder: str
    meta: PackMeta
    presets: tuple[Preset, ...]

    @property
    def key(self) -> Version:
        return Version(self.version)

    @property
    def layer(self) -> str:
        return self.meta.layer

    def preset(self, name: str) -> Preset | None:
        return next((p for p in self.presets if p.name == name), None)

    def path(self, rel: str) -> str:
        return f"{self.folder}/{rel}"


class PackRegistry:
    """All pack versions by name, newest last.

    ``broken`` names the ``(pack, version)`` folders that did not load, and ``partial`` says
    that some pack folders could not be read at all (a fleet.yaml whose ``packRegistries``
    did not load): a reference one of them may satisfy is not reported again where it is
    used, since its cause is reported where it lies.
    """

    def __init__(
        self,
        versions: Iterable[PackVersion],
        *,
        broken: Iterable[tuple[str, str]] = (),
        partial: bool = False,
    ) -> None:
        self.broken = frozenset(broken)
        self.partial = partial
        by_name: dict[str, dict[str, PackVersion]] = {}
        for pv in versions:  # later roots override earlier ones
            by_name.setdefault(pv.name, {})[str(pv.key)] = pv
        self._packs = {
            name: sorted(found.values(), key=lambda pv: pv.key) for name, found in by_name.items()
        }
        # what each (name, spec) resolved to: every cluster of a fleet asks the same few
        self._resolved: dict[tuple[str, str], PackVersion | None] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._packs

    def names(self) -> list[str]:
        return sorted(self._packs)

    def versions(self, name: str) -> list[PackVersion]:
        return list(self._packs.get(name, []))

    def resolve(self, name: str, spec: str) -> PackVersion | None:
        """The version ``spec`` names: exact, or the newest stable one on a train."""
        key = (name, spec)
        if key not in self._resolved:
            found = [pv for pv in self._packs.get(name, []) if version_matches(spec, pv.version)]
            if is_train(spec):
                found = [pv for pv in found if not pv.key.is_prerelease]
            self._resolved[key] = found[-1] if found else None
        return self._resolved[key]

    def may_hold(self, name: str, spec: str) -> bool:
        """Whether a pack version that did not load (or a folder not read) may be the one
        ``spec`` names: then a failed reference follows from that, and is not its own error."""
        return self.partial or any(
            pack == name and version_matches(spec, version) for pack, version in self.broken
        )


def version_matches(spec: str, version: str) -> bool:
    """Whether ``version`` satisfies ``spec``: equal to it, or on its train."""
    train = _TRAIN.match(spec)
    try:
        if train:
            prefix = tuple(int(p) for p in train.group(1).split("."))
            return Version(version).release[: len(prefix)] == prefix
        return Version(spec) == Version(version)
    except InvalidVersion:
        return False


def _pack_folders(tree: Tree, root: str) -> Iterator[tuple[str, str, str]]:
    """``(pack, version, folder)`` for every ``<root>/<pack>/<version>/pack.yaml``."""
    for path in tree.files(root):
        parts = path[len(root) + 1 :].split("/") if root else path.split("/")
        if len(parts) == 3 and parts[2] == "pack.yaml":
            yield parts[0], parts[1], path.rsplit("/", 1)[0]


def _load_version(
    tree: Tree, pack: str, version: str, folder: str
) -> PackVersion | list[Diagnostic]:
    meta_path = f"{folder}/pack.yaml"
    parsed = parse_file(meta_path, tree.read(meta_path))
    if isinstance(parsed, Diagnostic):
        return [parsed]
    meta = to_model(parsed, PackMeta)
    if isinstance(meta, list):
        return meta
    problems: list[Diagnostic] = []
    if meta.model.name != pack:
        problems.append(meta.at(("name",), f"pack name must match its folder '{pack}'"))
    try:
        if Version(meta.model.version) != Version(version):
            problems.append(
                meta.at(("version",), f"pack version must match its folder '{version}'")
            )
    except InvalidVersion:
        problems.append(meta.at(("version",), f"'{version}' is not a version like 1.2.3"))
    presets: tuple[Preset, ...] = ()
    presets_path = f"{folder}/presets.yaml"
    if tree.exists(presets_path):
        parsed_presets = parse_file(presets_path, tree.read(presets_path))
        if isinstance(parsed_presets, Diagnostic):
            problems.append(parsed_presets)
        else:
            doc = to_model(parsed_presets, PresetsFile)
            if isinstance(doc, list):
                problems.extend(doc)
            else:
                presets = tuple(doc.model.presets)
                problems.extend(_duplicate_presets(doc))
                if meta.model.layer == "k8s":
                    problems.extend(_network_in_presets(doc))
    if meta.model.layer == "k8s":
        problems.extend(_network_in_values(tree, f"{folder}/values.yaml"))
    if problems:
        return problems
    return PackVersion(pack, version, tree, folder, meta.model, presets)


def _duplicate_presets(doc: Doc[PresetsFile]) -> list[Diagnostic]:
    seen: set[str] = set()
    problems = []
    for index, preset in enumerate(doc.model.presets):
        if preset.name in seen:
            problems.append(
                doc.at(("presets", index, "name"), f"preset '{preset.name}' is defined twice")
            )
        seen.add(preset.name)
    return problems


def _network_problem(key: str) -> str:
    return (
        f"{key} is the cluster network, which each cluster sets in its spec.config.{key}: "
        "a k8s pack receives it in its values and does not set it"
    )


def _network_in_presets(doc: Doc[PresetsFile]) -> list[Diagnostic]:
    return [
        doc.at(("presets", index, "values", key), _network_problem(key))
        for index, preset in enumerate(doc.model.presets)
        for key in NETWORK_KEYS
        if key in preset.values
    ]


def _network_in_values(tree: Tree, path: str) -> list[Diagnostic]:
    if not tree.exists(path):
        return []
    parsed = parse_file(path, tree.read(path))
    if isinstance(parsed, Diagnostic) or not isinstance(parsed.data, dict):
        return []  # reported when the pack is rendered
    return [parsed.at((key,), _network_problem(key)) for key in NETWORK_KEYS if key in parsed.data]


def load_registry(
    roots: Iterable[tuple[Tree, str]], *, partial: bool = False
) -> tuple[PackRegistry, list[Diagnostic]]:
    """Index every pack under each ``(tree, folder)`` root; later roots win on equal versions.
    ``partial``: some roots are missing (see :class:`PackRegistry`)."""
    versions: list[PackVersion] = []
    broken: list[tuple[str, str]] = []
    problems: list[Diagnostic] = []
    for tree, root in roots:
        for pack, version, folder in _pack_folders(tree, root):
            loaded = _load_version(tree, pack, version, folder)
            if isinstance(loaded, list):
                problems.extend(loaded)
                broken.append((pack, version))
            else:
                versions.append(loaded)
    return PackRegistry(versions, broken=broken, partial=partial), problems
