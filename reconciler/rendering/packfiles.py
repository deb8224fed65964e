"""Reading a pack version's files for rendering: values, presets with lines, templates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import Diagnostic, FleetError
from ..loading import Parsed, parse_file
from ..loading.yamldocs import MAX_FILE_BYTES
from ..packs import PackVersion


@dataclass(frozen=True)
class PackFiles:
    """What rendering needs of one pack version, read once per run."""

    pack: PackVersion
    values: Parsed | None
    presets: Parsed | None
    manifests: tuple[tuple[str, str, str], ...]  # (name, path, source)
    user_data: tuple[str, str] | None  # (path, source)

    def preset_index(self, name: str) -> int:
        return next(i for i, p in enumerate(self.pack.presets) if p.name == name)


def _parse(pack: PackVersion, rel: str) -> Parsed | None:
    path = pack.path(rel)
    if not pack.tree.exists(path):
        return None
    parsed = parse_file(path, pack.tree.read(path))
    if isinstance(parsed, Diagnostic):
        raise FleetError([parsed])
    return parsed


def read_pack(pack: PackVersion) -> PackFiles:
    values = _parse(pack, "values.yaml")
    if values is not None and not isinstance(values.data, dict):
        raise FleetError([values.at((), "values.yaml must be a mapping")])
    manifests = []
    for path in pack.tree.files(pack.path("manifests")):
        name = path.rsplit("/", 1)[1]
        if name.endswith(".j2"):
            manifests.append((name.removesuffix(".j2"), path, _template(pack, path)))
    user_data = None
    if pack.tree.exists(pack.path("user-data.yaml.j2")):
        path = pack.path("user-data.yaml.j2")
        user_data = (path, _template(pack, path))
    return PackFiles(pack, values, _parse(pack, "presets.yaml"), tuple(manifests), user_data)


def _template(pack: PackVersion, path: str) -> str:
    """A template's text: UTF-8, no larger than a YAML file may be."""
    data = pack.tree.read(path)
    if len(data) > MAX_FILE_BYTES:
        reason = f"template is {len(data)} bytes, larger than the {MAX_FILE_BYTES} byte limit"
        raise FleetError([Diagnostic(path, 1, reason)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise FleetError([Diagnostic(path, line, "template is not UTF-8 text")]) from None


def pack_values(files: PackFiles) -> dict[str, Any]:
    return dict(files.values.data) if files.values is not None else {}
