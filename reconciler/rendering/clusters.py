"""Render one cluster: final pack values, manifests, node specs with user data, schedules."""

from __future__ import annotations

import functools
import io
import marshal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML

from agent.contract import (
    SCAN_TOOLS,
    BackupLocation,
    BackupParameters,
    BackupSchedule,
    ClusterNetwork,
    MaintenanceWindow,
    ManifestFile,
    Node,
    NodePlacement,
    NodeResources,
    NodeSetup,
    PackRef,
    PatchParameters,
    PatchSchedule,
    Pool,
    ScanParameters,
    ScanSchedule,
    Schedule,
)

from ..errors import Diagnostic, FleetError, mask
from ..loading import Doc, LineIndex, SiteFiles
from ..loading.files import ManifestSource, locate
from ..loading.yamldocs import YamlError, check_mappings
from ..models import ChartLayer, Fleet, Manifest, ManifestLayer, PackLayer
from ..validation import ResolvedCluster, ResolvedLayer
from .context import cluster_context, node_context, site_context
from .limits import LimitBroken, Meter, current
from .memo import CheckedTexts, Parts, Reads, SiteMemo, context_key, output_key, read_key
from .nodesetup import NodeFacts, SetupProblem, node_setup
from .packfiles import PackFiles
from .sandbox import Sandbox, TemplateFailure
from .values import choose_presets, merge, render_values

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class RenderedCluster:
    name: str
    mode: str
    packs: tuple[PackRef, ...]
    pools: tuple[Pool, ...]
    nodes: tuple[Node, ...]
    manifests: tuple[ManifestFile, ...]
    schedules: tuple[Schedule, ...]
    vip: str | None
    timezone: str
    windows: tuple[MaintenanceWindow, ...]
    network: ClusterNetwork


class ClusterRenderer:
    """Renders one cluster of one site; every template failure names pack, file, line, site
    and cluster."""

    def __init__(
        self,
        *,
        sandbox: Sandbox,
        pack_files: Any,  # Callable[[PackVersion], PackFiles]
        checked: CheckedTexts,
        memo: SiteMemo,
        site: SiteFiles,
        resolved: ResolvedCluster,
        fleet: Fleet,
        files: Mapping[str, ManifestSource],
    ) -> None:
        self.sandbox = sandbox
        self.files = files
        self.pack_files = pack_files
        self.checked = checked
        self.memo = memo
        # the context the last template saw, the keys of what templates read of it (by the
        # names they look up), and the meter's count of changes then
        self._context: tuple[object, dict[Reads | None, bytes | None], int] = (
            None,
            {},
            0,
        )
        # the keys of the mappings the contexts hold (pack values), by identity
        self._parts: Parts = {}
        # each pack's value sources, in layering order (set by final_values)
        self._sources: dict[str, list[tuple[Any, str, LineIndex | None, Loc]]] = {}
        self.site = site
        self.resolved = resolved
        self.fleet = fleet
        self.cluster = resolved.doc.model
        self.network = self.cluster.spec.config.network()  # with its defaults: made once
        self.where = f"site {site.name}, cluster {self.cluster.metadata.name}"
        # a template's error may hold what it computed from a sensitive variable: masked
        self.secrets = {
            str(rl.variables[v.name])
            for rl in resolved.layers
            for v in rl.profile.model.spec.variables
            if v.sensitive and rl.variables.get(v.name) not in (None, "")
        }
        self.base_context = {
            "site": site_context(site.name, site.site.model if site.site else None),
            "cluster": cluster_context(self.cluster, resolved.mode),
        }

    # -- failures -----------------------------------------------------------------------------

    def _fail(
        self, path: str, line: int, reason: str, what: str = "", *, limit: bool = False
    ) -> FleetError:
        label = f"{what}, {self.where}" if what else self.where
        error = LimitBroken if limit else FleetError
        message = mask(f"{reason} ({label})", self.secrets)
        return error([Diagnostic(path, max(line, 1), message)])

    def _text(
        self,
        path: str,
        source: str,
        context: dict[str, Any],
        what: str,
        *,
        name: str | None = None,
        first: Callable[[], int] | None = None,
    ) -> str:
        """A template's output, checked to be YAML mappings: the one this site's last
        render made when the template and its context are the same. ``name``: the
        template's own name (a manifest written in a document at ``path``), whose lines
        count from the document's line ``first``."""
        meter = current()
        reads = self.sandbox.reads(source)
        shared = reads is not None
        key = output_key(name or path, source, self._context_key(context, reads, meter))
        reused = self.memo.reuse(key, shared=shared)
        if reused is not None:
            return reused
        memory, changes = meter.memory_left, meter.changes
        try:
            text = self.sandbox.render(name or path, source, context)
        except TemplateFailure as e:
            line = first() + e.line if first is not None else e.line
            raise self._fail(path, line, e.reason, what, limit=e.limit) from None
        self._check_yaml(path, text, what, first)
        if meter.changes == changes:  # else what it saw is not what the next one sees
            self.memo.keep(key, text, memory - meter.memory_left, shared=shared)
        return text

    def _context_key(
        self, context: dict[str, Any], reads: Reads | None, meter: Meter
    ) -> bytes | None:
        """The key of what a template reads of ``context`` (all of it when ``reads`` is
        None), made once for the templates that read the same while none of them changes
        anything."""
        known, keys, changes = self._context
        if known is not context or changes != meter.changes:
            if changes != meter.changes:
                self._parts.clear()
            keys = {}
            self._context = (context, keys, meter.changes)
        if reads not in keys:
            if reads is None:
                keys[reads] = context_key(context, self._parts)
            else:
                keys[reads] = read_key(context, reads, self._parts)
        return keys[reads]

    def _values(
        self,
        value: Any,
        context: dict[str, Any],
        path: str,
        lines: LineIndex | None,
        loc: Loc,
        what: str,
    ) -> Any:
        try:
            return render_values(self.sandbox, path, value, context)
        except TemplateFailure as e:
            line = lines.line(loc) if lines is not None else e.line
            raise self._fail(path, line, e.reason, what, limit=e.limit) from None

    def _check_yaml(
        self, path: str, text: str, what: str, first: Callable[[], int] | None = None
    ) -> None:
        """Rendered text must be YAML mappings; ``first`` gives the file line before the
        text's first line (for manifests written inside a profile), asked only for an
        error."""
        key = hash(text)
        if key in self.checked:
            return
        try:
            check_mappings(text)
        except YamlError as e:
            line = min(e.line, max(text.rstrip("\n").count("\n") + 1, 1))
            reason = f"rendered output is not valid YAML (output line {line}: {e.message})"
            offset = first() if first is not None else 0
            raise self._fail(path, offset + line, reason, what) from None
        self.checked.add(key)

    # -- values -------------------------------------------------------------------------------

    def final_values(self) -> dict[str, dict[str, Any]]:
        """Each pack's values after layering and Jinja, by pack name."""
        doc = self.resolved.doc
        overrides = self.cluster.spec.packs
        raw: dict[str, list[tuple[Any, str, LineIndex | None, Loc]]] = {}
        for rl in self._pack_layers():
            layer = rl.layer
            assert isinstance(layer, PackLayer) and rl.pack is not None
            files: PackFiles = self.pack_files(rl.pack)
            sources: list[tuple[Any, str, LineIndex | None, Loc]] = []
            if files.values is not None:
                sources.append((files.values.data, files.values.path, files.values.lines, ()))
            group_of = {p.name: p.group for p in rl.pack.presets}
            override = overrides.get(layer.pack)
            chosen = choose_presets(layer.presets, override.presets if override else [], group_of)
            for name in chosen:
                preset = rl.pack.preset(name)
                if preset is not None and files.presets is not None:
                    index = files.preset_index(name)
                    sources.append(
                        (
                            preset.values,
                            files.presets.path,
                            files.presets.lines,
                            ("presets", index, "values"),
                        )
                    )
            if layer.values:
                sources.append(
                    (
                        layer.values,
                        rl.profile.path,
                        rl.profile.lines,
                        ("spec", "layers", rl.index, "values"),
                    )
                )
            if override is not None and override.values:
                sources.append(
                    (override.values, doc.path, doc.lines, ("spec", "packs", layer.pack, "values"))
                )
            raw[layer.pack] = sources
        self._sources = raw
        network = dict(self.network)
        # the cluster network reaches the k8s pack's values from spec.config alone (validation
        # refuses it anywhere else): templates read values.podCIDR, packs.k3s.podCIDR
        k8s = self._k8s_pack()
        # everything the values are made of, as this site's last render saw it or not
        inputs = (
            [(name, [value for value, *_ in sources]) for name, sources in raw.items()],
            [(str(rl.pack.version) if rl.pack else "", rl.variables) for rl in self._pack_layers()],
        )
        key = output_key(
            "values", inputs, context_key({**self.base_context, "network": network, "k8s": k8s})
        )
        reused = self.memo.reuse_data(key)
        if reused is not None:
            return dict(reused)
        meter = current()
        memory, changes = meter.memory_left, meter.changes
        final = self._final_values(raw, network, k8s)
        if meter.changes == changes:
            self.memo.keep_data(key, final, memory - meter.memory_left)
        return final

    def _final_values(
        self,
        raw: dict[str, list[tuple[Any, str, LineIndex | None, Loc]]],
        network: dict[str, str],
        k8s: str | None,
    ) -> dict[str, dict[str, Any]]:
        unrendered = {name: _merge_all(s[0] for s in sources) for name, sources in raw.items()}
        if k8s is not None:
            unrendered[k8s] = {**unrendered[k8s], **network}
        final: dict[str, dict[str, Any]] = {}
        for rl in self._pack_layers():
            assert isinstance(rl.layer, PackLayer) and rl.pack is not None
            name = rl.layer.pack
            context = {
                **self.base_context,
                "vars": rl.variables,
                "values": unrendered[name],
                "packs": {k: v for k, v in unrendered.items() if k != name},
            }
            what = f"pack {name} {rl.pack.version}"
            rendered = [
                self._render_source(value, context, path, lines, loc, what)
                for value, path, lines, loc in raw[name]
            ]
            final[name] = _merge_all(rendered)
            if name == k8s:
                final[name] |= network
        return final

    def _k8s_pack(self) -> str | None:
        return next((rl.layer.pack for rl in self._pack_layers() if rl.layer.layer == "k8s"), None)

    def _render_source(
        self,
        value: Any,
        context: dict[str, Any],
        path: str,
        lines: LineIndex | None,
        loc: Loc,
        what: str,
    ) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for key, item in value.items():
            out[key] = self._values(item, context, path, lines, (*loc, key), what)
        return out

    def _pack_layers(self) -> list[ResolvedLayer]:
        return [rl for rl in self.resolved.layers if isinstance(rl.layer, PackLayer)]

    # -- manifests ----------------------------------------------------------------------------

    def manifests(self, final: dict[str, dict[str, Any]]) -> list[ManifestFile]:
        out: list[ManifestFile] = []
        for rl in self.resolved.layers:
            layer = rl.layer
            context = {**self.base_context, "vars": rl.variables}
            if isinstance(layer, PackLayer):
                assert rl.pack is not None
                files: PackFiles = self.pack_files(rl.pack)
                what = f"pack {layer.pack} {rl.pack.version}"
                context |= {
                    "values": final[layer.pack],
                    "packs": {k: v for k, v in final.items() if k != layer.pack},
                }
                for name, path, source in files.manifests:
                    text = self._text(path, source, context, what)
                    if not text.strip():
                        continue  # a manifest this cluster does not need (kube-vip: no VIP)
                    out.append(
                        ManifestFile(layer=layer.layer, pack=layer.pack, name=name, content=text)
                    )
                for j, attached in enumerate(layer.manifests):
                    loc = ("spec", "layers", rl.index, "manifests", j)
                    out.append(
                        self._attached(
                            rl.profile, loc, layer.layer, layer.pack, attached, context, what
                        )
                    )
            elif isinstance(layer, ChartLayer):
                what = f"chart {layer.chart.name} {layer.chart.version}"
                context |= {"values": {}, "packs": final}
                values = self._values(
                    layer.values,
                    context,
                    rl.profile.path,
                    rl.profile.lines,
                    ("spec", "layers", rl.index, "values"),
                    what,
                )
                out.append(_helm_chart(layer, values))
            elif isinstance(layer, ManifestLayer):
                what = f"manifest layer {layer.name}"
                context |= {"values": {}, "packs": final}
                for j, attached in enumerate(layer.manifests):
                    loc = ("spec", "layers", rl.index, "manifests", j)
                    out.append(
                        self._attached(
                            rl.profile, loc, "addon", layer.name, attached, context, what
                        )
                    )
        # the cluster's own manifests, after its profiles' (a site's secrets live here)
        context = {**self.base_context, "vars": {}, "values": {}, "packs": final}
        doc = self.resolved.doc
        for j, attached in enumerate(self.cluster.spec.manifests):
            out.append(
                self._attached(
                    doc,
                    ("spec", "manifests", j),
                    "addon",
                    self.cluster.metadata.name,
                    attached,
                    context,
                    "cluster manifests",
                )
            )
        return out

    def _attached(
        self,
        doc: Doc[Any],
        loc: Loc,
        layer: str,
        pack: str,
        manifest: Manifest,
        context: dict[str, Any],
        what: str,
    ) -> ManifestFile:
        """A raw manifest: a template written in ``doc`` or in the file it names; a SOPS file
        as it is, sealed, never seen by a template."""
        if manifest.content is not None:
            text = self._inline(doc, loc, manifest.name, manifest.content, context, what)
            return ManifestFile(layer=layer, pack=pack, name=manifest.name, content=text)
        assert manifest.file is not None
        source = self.files[locate(doc.path, manifest.file)]  # validated: it was read
        if source.sops:
            return ManifestFile(
                layer=layer, pack=pack, name=manifest.name, content=source.text, encryption="sops"
            )
        what = f"{what}, manifest {manifest.name}"
        text = self._text(source.path, source.text, context, what)
        return ManifestFile(layer=layer, pack=pack, name=manifest.name, content=text)

    def _inline(
        self,
        doc: Doc[Any],
        loc: Loc,
        name: str,
        content: str,
        context: dict[str, Any],
        what: str,
    ) -> str:
        """A manifest written in a document: its template lines count from its ``content:``."""
        # the output's lines match the template's only roughly: a rendered text that is not
        # YAML points into the content block (its line found only then: it parses the file)
        return self._text(
            doc.path,
            content,
            context,
            f"{what}, manifest {name}",
            name=f"{doc.path}#{name}",
            first=lambda: doc.lines.line((*loc, "content")),
        )

    # -- nodes --------------------------------------------------------------------------------

    def nodes(self, final: dict[str, dict[str, Any]]) -> list[Node]:
        os_layer = next(
            (rl for rl in self._pack_layers() if rl.layer.layer == "os"),
            None,
        )
        os_files: PackFiles | None = (
            self.pack_files(os_layer.pack) if os_layer and os_layer.pack else None
        )
        image_pack = "os" if self.resolved.mode == "virtualized" else "k8s"
        image_key = "vmImage" if self.resolved.mode == "virtualized" else "nodeImage"
        image = None
        for rl in self._pack_layers():
            assert isinstance(rl.layer, PackLayer)
            if rl.layer.layer == image_pack:
                found = final[rl.layer.pack].get(image_key)
                image = str(found) if found is not None else None
        k8s = self._k8s_pack()
        tags = self.resolved.profile_tags()
        out = []
        for pool in self.cluster.spec.nodePools:
            role = "control-plane" if pool.controlPlane else "worker"
            for i in range(1, pool.size + 1):
                name = f"{self.cluster.metadata.name}-{pool.name}-{i}"
                appliance = pool.appliance_of(i)
                facts = NodeFacts(name, pool.name, pool.controlPlane, pool.workerCapable)
                setup = self._setup(facts, final.get(k8s, {}) if k8s else {}, tags)
                user_data = ""
                if os_files is not None and os_files.user_data is not None and os_layer is not None:
                    assert isinstance(os_layer.layer, PackLayer) and os_layer.pack is not None
                    path, source = os_files.user_data
                    what = f"pack {os_layer.layer.pack} {os_layer.pack.version}, node {name}"
                    context = {
                        **self.base_context,
                        "vars": os_layer.variables,
                        "values": final[os_layer.layer.pack],
                        "packs": {k: v for k, v in final.items() if k != os_layer.layer.pack},
                        "node": node_context(name, pool.name, role, appliance, setup),
                    }
                    user_data = self._text(path, source, context, what)
                out.append(
                    Node(
                        name=name,
                        pool=pool.name,
                        role=role,
                        appliance=appliance,
                        workerCapable=pool.workerCapable or not pool.controlPlane,
                        image=image,
                        resources=NodeResources(**pool.resources.model_dump())
                        if pool.resources
                        else None,
                        placement=NodePlacement(**pool.placement.model_dump())
                        if pool.placement
                        else None,
                        userData=user_data,
                        setup=setup,
                    )
                )
        return out

    def _setup(self, node: NodeFacts, k8s: dict[str, Any], tags: dict[str, str]) -> NodeSetup:
        """What the node reads; a k8s value that cannot be written fails the commit where
        it was last set."""
        site = self.site.site.model if self.site.site else None
        try:
            return node_setup(
                node,
                cluster=self.cluster.metadata.name,
                k8s=k8s,
                network=dict(self.network),
                site=site,
                vip=self.cluster.spec.config.vip,
                tags=tags,
            )
        except SetupProblem as e:
            path, line = self._value_line(self._k8s_pack() or "", e.key)
            raise self._fail(path, line, str(e), f"node {node.name}") from None

    def _value_line(self, pack: str, key: str) -> tuple[str, int]:
        """Where a pack's value ``key`` was set last (the cluster's file when nowhere)."""
        for value, path, lines, loc in reversed(self._sources.get(pack, [])):
            if isinstance(value, dict) and key in value and lines is not None:
                return path, lines.line((*loc, key))
        return self.resolved.doc.path, self.resolved.doc.line("spec")

    # -- schedules ----------------------------------------------------------------------------

    def schedules(self) -> list[Schedule]:
        policies = self.cluster.spec.policies
        timezone = self.base_context["site"]["timezone"]
        out: list[Schedule] = []
        if policies.osPatch is not None:
            patch = policies.osPatch
            out.append(
                PatchSchedule(
                    name="os-patch",
                    cron=patch.schedule,
                    timezone=timezone,
                    parameters=PatchParameters(
                        onBoot=patch.onBoot, rebootIfRequired=patch.rebootIfRequired
                    ),
                )
            )
        if policies.scans is not None:
            for scan, tool in SCAN_TOOLS.items():
                cron = getattr(policies.scans, scan)
                if cron is not None:
                    out.append(
                        ScanSchedule(
                            name=f"scan-{scan}",
                            cron=cron,
                            timezone=timezone,
                            parameters=ScanParameters(scan=scan, tool=tool),
                        )
                    )
        if policies.backup is not None:
            backup = policies.backup
            location = next(b for b in self.fleet.spec.backupLocations if b.name == backup.location)
            prefix = "/".join(
                p.strip("/")
                for p in (
                    location.prefix,
                    backup.prefix or f"{self.site.name}/{self.cluster.metadata.name}",
                )
                if p.strip("/")
            )
            out.append(
                BackupSchedule(
                    name="backup",
                    cron=backup.schedule,
                    timezone=timezone,
                    parameters=BackupParameters(
                        location=BackupLocation(**location.model_dump(exclude={"prefix"})),
                        prefix=prefix,
                        expiryHours=backup.expiryHours,
                        namespaces=list(backup.namespaces),
                        includeClusterResources=backup.includeClusterResources,
                    ),
                )
            )
        return out

    # -- the whole cluster --------------------------------------------------------------------

    def render(self) -> RenderedCluster:
        final = self.final_values()
        packs = tuple(
            PackRef(name=rl.pack.name, version=rl.pack.version, layer=rl.pack.layer)
            for rl in self._pack_layers()
            if rl.pack is not None
        )
        pools = tuple(
            Pool(
                name=p.name,
                controlPlane=p.controlPlane,
                size=p.size,
                updateStrategy=p.updateStrategy,
            )
            for p in self.cluster.spec.nodePools
        )
        site = self.site.site.model if self.site.site else None
        windows = tuple(
            MaintenanceWindow(days=list(w.days), start=w.start, duration=w.duration)
            for w in (site.spec.maintenanceWindows if site else [])
        )
        return RenderedCluster(
            name=self.cluster.metadata.name,
            mode=self.resolved.mode,
            packs=packs,
            pools=pools,
            nodes=tuple(self.nodes(final)),
            manifests=tuple(self.manifests(final)),
            schedules=tuple(self.schedules()),
            vip=self.cluster.spec.config.vip,
            timezone=site.spec.timezone if site else "UTC",
            windows=windows,
            network=ClusterNetwork(**self.network),
        )


def _merge_all(values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for value in values:
        if isinstance(value, dict):
            out = merge(out, value)
    return out


_YAML_DUMP = YAML(typ="safe")
_YAML_DUMP.default_flow_style = False


def _helm_chart(layer: ChartLayer, values: dict[str, Any]) -> ManifestFile:
    """A Helm chart layer as the HelmChart object the cluster's helm controller installs."""
    chart = layer.chart
    fields = (chart.name, chart.repo, chart.version, chart.namespace)
    try:  # marshal's version 2 writes equal values as equal bytes (no back-references)
        content = _helm_chart_text(fields, marshal.dumps(values, 2))
    except ValueError:  # not plain data (not expected of rendered values): made here
        content = _chart_text(fields, values)
    return ManifestFile(
        layer="addon", pack=chart.name, name=f"helmchart-{chart.name}.yaml", content=content
    )


@functools.lru_cache(maxsize=1024)
def _helm_chart_text(fields: tuple[str, str, str, str], values: bytes) -> str:
    """:func:`_chart_text` made once for the same chart and values (``marshal`` bytes, key
    order kept): the same chart is installed at many sites."""
    return _chart_text(fields, marshal.loads(values))


def _chart_text(fields: tuple[str, str, str, str], values: dict[str, Any]) -> str:
    name, repo, version, namespace = fields
    buffer = io.StringIO()
    if values:
        _YAML_DUMP.dump(values, buffer)
    document = {
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChart",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {
            "repo": repo,
            "chart": name,
            "version": version,
            "targetNamespace": namespace,
            "createNamespace": True,
            "valuesContent": buffer.getvalue(),
        },
    }
    out = io.StringIO()
    _YAML_DUMP.dump(document, out)
    return out.getvalue()
