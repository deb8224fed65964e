"""Pack metadata: ``pack.yaml`` and ``presets.yaml`` of a pack version folder."""

from __future__ import annotations

from .common import Name, NonEmptyStr, Strict, Values
from .profile import LayerKind


class PackDependency(Strict):
    pack: Name
    version: NonEmptyStr | None = None


class PackMeta(Strict):
    name: Name
    version: NonEmptyStr
    layer: LayerKind
    description: str = ""
    dependencies: list[PackDependency] = []


class Preset(Strict):
    name: NonEmptyStr
    group: NonEmptyStr
    description: str = ""
    values: Values = {}


class PresetsFile(Strict):
    presets: list[Preset] = []
