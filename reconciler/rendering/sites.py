"""Render one site into one DesiredState per appliance, and a whole fleet site by site."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.contract import ClusterServer, ClusterState, DesiredState, sealed

from ..canonical import state_json
from ..errors import Diagnostic, FleetError
from ..loading import FleetRepo, SiteFiles
from ..packs import PackRegistry, PackVersion
from ..validation import FleetIndex, build_index, resolve_cluster
from .clusters import ClusterRenderer, RenderedCluster
from .limits import LimitBroken, RenderLimits
from .memo import CheckedTexts, RenderMemo
from .packfiles import PackFiles, read_pack
from .sandbox import Sandbox


@dataclass
class Renderer:
    """Holds what is worth keeping between sites and revisions: compiled templates, read
    pack files, rendered text already checked to be YAML and each site's last outputs."""

    limits: RenderLimits = field(default_factory=RenderLimits)
    sandbox: Sandbox = field(init=False)
    memo: RenderMemo = field(default_factory=RenderMemo)
    # with keep_contents (the reconciler, which stores them): the canonical JSON of the
    # states rendered since the last take_contents(), by digest; a render or a plan does
    # not keep them (400 MiB at 10,000 sites, sent back by every render worker)
    keep_contents: bool = False
    contents: dict[str, str] = field(default_factory=dict)
    # with keep_contents, the signatures of the states' served documents that render_sites
    # made with a presigner (the reconciler's, when it signs what it serves), by digest
    signatures: dict[str, str] = field(default_factory=dict)
    _packs: dict[tuple[int, str], PackFiles] = field(default_factory=dict)
    checked: CheckedTexts = field(default_factory=CheckedTexts)

    def __post_init__(self) -> None:
        self.sandbox = Sandbox(self.limits)

    def pack_files(self, pack: PackVersion) -> PackFiles:
        key = (id(pack.tree), pack.folder)
        cached = self._packs.get(key)
        if cached is None or cached.pack is not pack:
            cached = read_pack(pack)
            self._packs[key] = cached
        return cached

    def take_contents(self) -> dict[str, str]:
        """The canonical JSON of the states rendered since the last call, by digest (what
        the store keeps: made once, where the state was sealed)."""
        taken, self.contents = self.contents, {}
        return taken

    def take_signatures(self) -> dict[str, str]:
        """The signatures made since the last call (see render_sites), by digest."""
        taken, self.signatures = self.signatures, {}
        return taken

    def render_site(
        self,
        site: SiteFiles,
        *,
        repo: FleetRepo,
        index: FleetIndex,
        registry: PackRegistry,
        revision: str,
    ) -> dict[str, DesiredState]:
        """Every appliance of ``site``: its DesiredState. Raises FleetError, LimitBroken when
        a template broke a rendering limit (the site's templates share one set of limits)."""
        assert repo.fleet is not None
        clusters: list[RenderedCluster] = []
        problems: list[Diagnostic] = []
        memo = self.memo.start(site.name)
        with self.sandbox.limited():
            for doc in sorted(site.clusters, key=lambda d: d.model.metadata.name):
                resolved, why = resolve_cluster(site, doc, index, registry)
                if resolved is None:
                    problems += why
                    continue
                renderer = ClusterRenderer(
                    sandbox=self.sandbox,
                    pack_files=self.pack_files,
                    checked=self.checked,
                    memo=memo,
                    site=site,
                    resolved=resolved,
                    fleet=repo.fleet.model,
                    files=repo.manifest_files,
                )
                try:
                    clusters.append(renderer.render())
                except LimitBroken as e:
                    raise LimitBroken(problems + e.diagnostics) from None
                except FleetError as e:
                    problems += e.diagnostics
        if problems:
            raise FleetError(problems)
        self.memo.rendered(site.name, memo)
        states = {}
        for appliance in site.appliances:
            name = appliance.model.metadata.name
            state, content = _for_appliance(name, site.name, revision, clusters)
            if self.keep_contents:
                self.contents[state.digest] = content.decode()
            states[name] = state
        return states


def _for_appliance(
    appliance: str, site: str, revision: str, clusters: Iterable[RenderedCluster]
) -> tuple[DesiredState, bytes]:
    """The part of each cluster an appliance runs: its own nodes; the manifests where it runs
    a control-plane node; the scans on the appliance of the first control-plane node, OS
    patching and backups (each appliance its own nodes' volumes) wherever nodes run. A
    cluster spanning appliances also names its members and its servers in the order the
    cluster forms, so each appliance knows which node starts it and where."""
    states = []
    for cluster in clusters:
        nodes = [n for n in cluster.nodes if n.appliance == appliance]
        if not nodes:
            continue
        first_cp = next(n for n in cluster.nodes if n.role == "control-plane")
        runs_cp = any(n.role == "control-plane" for n in nodes)
        schedules = [
            s
            for s in cluster.schedules
            if s.kind in ("patch", "backup") or first_cp.appliance == appliance
        ]
        members = sorted({n.appliance for n in cluster.nodes})
        spans = len(members) > 1
        servers = [
            ClusterServer(node=n.name, appliance=n.appliance)
            for n in cluster.nodes
            if n.role == "control-plane"
        ]
        states.append(
            ClusterState(
                name=cluster.name,
                mode=cluster.mode,
                vip=cluster.vip,
                network=cluster.network,
                packs=list(cluster.packs),
                pools=list(cluster.pools),
                nodes=sorted(nodes, key=lambda n: n.name),
                manifests=list(cluster.manifests) if runs_cp else [],
                schedules=schedules,
                maintenanceWindows=list(cluster.windows),
                timezone=cluster.timezone,
                appliances=members if spans else [],
                servers=servers if spans else [],
            )
        )
    return sealed(
        appliance=appliance, site=site, revision=revision, clusters=states, encode=state_json
    )


def render_repository(
    repo: FleetRepo,
    registry: PackRegistry,
    *,
    revision: str,
    sites: Iterable[str] | None = None,
    renderer: Renderer | None = None,
    index: FleetIndex | None = None,
) -> dict[str, dict[str, DesiredState]]:
    """DesiredStates of the chosen sites (default: all), by site then appliance. The
    repository must have validated; raises FleetError with every template problem, or
    LimitBroken as soon as a site broke a rendering limit. ``index``: the repository's,
    when the caller has it (it reads every site)."""
    renderer = renderer or Renderer()
    index = index or build_index(repo)
    out: dict[str, dict[str, DesiredState]] = {}
    problems: list[Diagnostic] = []
    names = sorted(repo.sites) if sites is None else sorted(sites)
    for name in names:
        try:
            out[name] = renderer.render_site(
                repo.sites[name], repo=repo, index=index, registry=registry, revision=revision
            )
        except LimitBroken as e:
            raise LimitBroken(problems + e.diagnostics) from None
        except FleetError as e:
            problems += e.diagnostics
    if problems:
        raise FleetError(problems)
    return out
