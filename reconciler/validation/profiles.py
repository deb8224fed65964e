"""Rules for one cluster profile: core layers, pack references, presets, variables."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ..errors import Diagnostic
from ..loading import Doc
from ..models import (
    CORE_LAYERS,
    NETWORK_KEYS,
    ChartLayer,
    ClusterProfile,
    ManifestLayer,
    PackLayer,
)
from ..packs import PackRegistry, PackVersion, is_train
from .variables import format_problem


def resolve_pack(registry: PackRegistry, layer: PackLayer) -> tuple[PackVersion | None, str | None]:
    """The pack version a layer names, or the reason it names none (None as well when the
    reason is reported elsewhere: a pack version or a pack folder that did not load)."""
    found = registry.resolve(layer.pack, layer.version)
    if found is None and registry.may_hold(layer.pack, layer.version):
        return None, None
    if layer.pack not in registry:
        known = ", ".join(registry.names())
        return None, f"unknown pack '{layer.pack}' (known: {known})"
    if found is None:
        have = ", ".join(pv.version for pv in registry.versions(layer.pack))
        what = "train" if is_train(layer.version) else "version"
        return None, (
            f"pack '{layer.pack}' has no version matching {what} '{layer.version}' "
            f"(available: {have})"
        )
    return found, None


def check_presets(
    doc: Doc[Any],
    loc: tuple[str | int, ...],
    pack: PackVersion,
    names: list[str],
) -> Iterator[Diagnostic]:
    """Every preset exists in the pack version; at most one per group."""
    groups: dict[str, str] = {}
    for i, name in enumerate(names):
        preset = pack.preset(name)
        if preset is None:
            known = ", ".join(p.name for p in pack.presets) or "none"
            yield doc.at(
                (*loc, i),
                f"pack {pack.name} {pack.version} has no preset '{name}' (presets: {known})",
            )
            continue
        if preset.group in groups:
            yield doc.at(
                (*loc, i),
                f"presets '{groups[preset.group]}' and '{name}' are both in group "
                f"'{preset.group}'; choose one",
            )
        groups[preset.group] = name


def check_profile(doc: Doc[ClusterProfile], registry: PackRegistry) -> Iterator[Diagnostic]:
    spec = doc.model.spec
    counts = dict.fromkeys(CORE_LAYERS, 0)
    packs_seen: dict[str, int] = {}
    layer_names: set[str] = set()
    for i, layer in enumerate(spec.layers):
        loc: tuple[str | int, ...] = ("spec", "layers", i)
        if layer.layer in counts:
            counts[layer.layer] += 1
            if spec.type == "add-on":
                yield doc.at(
                    (*loc, "layer"),
                    f"an add-on profile cannot have a core '{layer.layer}' layer",
                )
        elif spec.type == "infra":
            yield doc.at(
                (*loc, "layer"),
                "an infra profile holds only its os, k8s, cni and csi layers; put add-on "
                "layers in an add-on profile",
            )
        if isinstance(layer, PackLayer):
            if layer.pack in packs_seen:
                yield doc.at(
                    (*loc, "pack"),
                    f"pack '{layer.pack}' is already installed by layer {packs_seen[layer.pack]}",
                )
            packs_seen[layer.pack] = i
            pack, problem = resolve_pack(registry, layer)
            if pack is None:
                if problem is not None:
                    where = "version" if layer.pack in registry else "pack"
                    yield doc.at((*loc, where), problem)
                continue
            if pack.layer != layer.layer:
                yield doc.at(
                    (*loc, "layer"),
                    f"pack '{pack.name}' is a {pack.layer} pack, not {layer.layer}",
                )
            yield from check_presets(doc, (*loc, "presets"), pack, layer.presets)
            yield from _unique_manifests(doc, loc, [m.name for m in layer.manifests])
            if pack.layer == "k8s":
                for key in NETWORK_KEYS:
                    if key in layer.values:
                        yield doc.at(
                            (*loc, "values", key),
                            f"{key} is the cluster network: each cluster sets it in its "
                            f"spec.config.{key}, the one place it is written",
                        )
        elif isinstance(layer, ManifestLayer):
            if layer.name in layer_names:
                yield doc.at((*loc, "name"), f"manifest layer '{layer.name}' is twice")
            layer_names.add(layer.name)
            yield from _unique_manifests(doc, loc, [m.name for m in layer.manifests])
        elif isinstance(layer, ChartLayer):
            key = f"chart:{layer.chart.name}"
            if key in packs_seen:
                yield doc.at((*loc, "chart", "name"), f"chart '{layer.chart.name}' is twice")
            packs_seen[key] = i
    if spec.type in ("full", "infra"):
        for kind, count in counts.items():
            if count != 1:
                yield doc.at(
                    ("spec", "layers") if spec.layers else ("spec",),
                    f"a {spec.type} profile needs exactly one '{kind}' layer (has {count})",
                )
    yield from _check_variables(doc)
    yield from _check_tags(doc)


# a Kubernetes label's name and value (the tags become node labels edgefleet.dev/<name>)
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
# the labels edgefleet sets itself under the same prefix
RESERVED_TAGS = ("cluster", "pool")


def _check_tags(doc: Doc[ClusterProfile]) -> Iterator[Diagnostic]:
    """A profile's tags reach its clusters' nodes as labels ``edgefleet.dev/<name>``: each
    must be a valid Kubernetes label."""
    for name, value in doc.model.metadata.tags.items():
        loc = ("metadata", "tags", name)
        if not _LABEL_NAME.fullmatch(name):
            yield doc.at(
                loc,
                f"tag '{name}' is not a Kubernetes label name (letters, digits, '-', '_' and "
                "'.', at most 63, alphanumeric at both ends): it becomes the node label "
                f"edgefleet.dev/{name}",
            )
        elif name in RESERVED_TAGS:
            yield doc.at(
                loc, f"tag '{name}' is taken: edgefleet sets the node label edgefleet.dev/{name}"
            )
        if not _LABEL_VALUE.fullmatch(value):
            yield doc.at(
                loc,
                f"tag {name}: '{value}' is not a Kubernetes label value (letters, digits, "
                "'-', '_' and '.', at most 63, alphanumeric at both ends)",
            )


def _unique_manifests(
    doc: Doc[ClusterProfile], loc: tuple[str | int, ...], names: list[str]
) -> Iterator[Diagnostic]:
    seen: set[str] = set()
    for j, name in enumerate(names):
        if name in seen:
            yield doc.at((*loc, "manifests", j, "name"), f"manifest '{name}' is twice")
        seen.add(name)


def _check_variables(doc: Doc[ClusterProfile]) -> Iterator[Diagnostic]:
    seen: set[str] = set()
    for i, variable in enumerate(doc.model.spec.variables):
        loc = ("spec", "variables", i)
        if variable.name in seen:
            yield doc.at((*loc, "name"), f"variable '{variable.name}' is declared twice")
        seen.add(variable.name)
        if variable.regex is not None:
            try:
                re.compile(variable.regex)
            except re.error as e:
                yield doc.at((*loc, "regex"), f"regex does not compile: {e}")
                continue
        if variable.default is not None:
            problem = format_problem(variable, variable.default)
            if problem:
                yield doc.at((*loc, "default"), f"default: {problem}")
