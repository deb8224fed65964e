"""Plan: exactly what a change between two commits does to each site, and how the rollout
will take it.

Only the sites a change can touch are read and rendered (:mod:`.impact`), so the cost follows
the size of the change, not of the fleet; the renderings are compared in :mod:`.changes`,
sites with the same change are grouped (:mod:`.groups`), and :mod:`.outlook` tells the waves,
the maintenance windows and the warnings with the rollout's own rules (:mod:`.waves`,
:mod:`.windows`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent.contract import DesiredState, MaintenanceWindow

from ..errors import Diagnostic, FleetError
from ..loading import ParseCache
from ..rendering import Renderer, render_sites
from ..sources import GitRepository, GitTree, Tree, changed_paths
from ..validation import Checked, build_index, check_repository, sensitive_values
from .changes import (
    ApplianceChange,
    ClusterChange,
    NodeChange,
    SiteChange,
    compare_site,
    disruptive,
)
from .groups import ChangeGroup, group_changes
from .impact import candidate_sites, input_digest, site_names
from .outlook import Outlook, SitePlace, WaveChange, WindowHold, outlook
from .waves import Wave

__all__ = [
    "ANCESTORS",
    "ApplianceChange",
    "BaseInvalid",
    "BaseSubstitute",
    "ChangeGroup",
    "ClusterChange",
    "NodeChange",
    "Plan",
    "SiteChange",
    "WaveChange",
    "WindowHold",
    "compare_site",
    "disruptive",
    "make_plan",
]

ANCESTORS = 20  # how far back plan looks for a base that validates


class BaseInvalid(FleetError):
    """The revision a plan compares against does not validate, nor do its nearest
    ancestors."""


@dataclass(frozen=True)
class BaseSubstitute:
    """The base asked for did not validate; the plan compares with its nearest ancestor
    that does."""

    requested: str  # the commit asked for
    problems: tuple[str, ...]  # why it does not validate (the first few)
    count: int  # how many problems in all
    skipped: int  # commits passed over, the requested one included


@dataclass(frozen=True)
class Plan:
    base: str
    head: str
    total_sites: int
    sites: tuple[SiteChange, ...]
    rendered_sites: int  # how many sites had to be rendered to find this out
    groups: tuple[ChangeGroup, ...] = ()
    outlook: Outlook = field(default_factory=lambda: Outlook((), (), (), ()))
    substitute: BaseSubstitute | None = None

    @property
    def summary(self) -> str:
        clusters = [c for s in self.sites for c in s.clusters]
        restarting = sum(any(n.kind == "restarted" for n in c.nodes) for c in clusters)
        replacing = sum(any(n.kind == "replaced" for n in c.nodes) for c in clusters)
        losing = sum(c.kind == "changed" and c.loses_data for c in clusters)
        deleted = sum(1 for c in clusters if c.kind == "removed")
        added = sum(1 for c in clusters if c.kind == "added")
        parts = [f"{len(self.sites)} of {self.total_sites} sites change"]
        if restarting:
            verb = "restarts" if restarting == 1 else "restart"
            parts.append(f"{restarting} {_clusters(restarting)} {verb} nodes (keeping their data)")
        if replacing:
            verb = "replaces" if replacing == 1 else "replace"
            parts.append(f"{replacing} {_clusters(replacing)} {verb} nodes")
        if losing:
            verb = "loses" if losing == 1 else "lose"
            parts.append(f"{losing} {_clusters(losing)} {verb} node data")
        if added:
            parts.append(f"{added} {_clusters(added)} {'is' if added == 1 else 'are'} added")
        if deleted:
            parts.append(
                f"{deleted} {_clusters(deleted)} {'is' if deleted == 1 else 'are'} deleted"
            )
        return "; ".join(parts)


def _clusters(n: int) -> str:
    return "cluster" if n == 1 else "clusters"


def make_plan(
    git: GitRepository,
    base_rev: str,
    head_rev: str,
    *,
    builtin: tuple[Tree, str],
    renderer: Renderer | None = None,
    at: datetime | None = None,
) -> Plan:
    """Compare two revisions; raises FleetError when the head does not validate or render,
    BaseInvalid when neither the base nor its nearest ancestors validate, and SourceError
    when a revision does not resolve. ``at``: when maintenance windows are judged from
    (now by default)."""
    head = git.tree(head_rev)
    renderer = renderer or Renderer()
    cache: ParseCache = {}  # a file unchanged between the commits is parsed once
    base, before, candidates, substitute = _valid_base(git, base_rev, head, builtin, cache)
    after = _checked(head, builtin, candidates, cache)
    digests = _digests(before, candidates), _digests(after, candidates)
    changed = sorted(site for site in candidates if digests[0].get(site) != digests[1].get(site))
    old = _render(before, base, changed, renderer)
    new = _render(after, head, changed, renderer)
    secrets = _secrets(before, changed) | _secrets(after, changed)
    sites = []
    for site in changed:
        change = compare_site(site, old.get(site, {}), new.get(site, {}), mask=secrets)
        if change is not None:
            sites.append(change)
    places = {s.name: _place(after, s.name) or _place(before, s.name) for s in sites}
    return Plan(
        base=base.commit,
        head=head.commit,
        total_sites=len(site_names(head)),
        sites=tuple(sites),
        rendered_sites=len(changed),
        groups=group_changes(sites),
        outlook=outlook(
            sites,
            {name: place for name, place in places.items() if place is not None},
            _waves(after),
            at=at or datetime.now(UTC),
        ),
        substitute=substitute,
    )


def _valid_base(
    git: GitRepository,
    base_rev: str,
    head: GitTree,
    builtin: tuple[Tree, str],
    cache: ParseCache,
) -> tuple[GitTree, Checked, set[str], BaseSubstitute | None]:
    """The base asked for, or its nearest first-parent ancestor that validates (a pull
    request that fixes a broken main still gets a plan)."""
    commit = git.resolve(base_rev)
    first: list[Diagnostic] | None = None
    for skipped in range(ANCESTORS + 1):
        tree = git.tree(str(commit.id))
        candidates = candidate_sites(changed_paths(tree, head), [tree, head])
        checked = check_repository(tree, builtin=builtin, sites=candidates, cache=cache)
        if not checked.diagnostics:
            substitute = None
            if first is not None:
                shown = tuple(str(d) for d in sorted(first)[:5])
                requested = str(git.resolve(base_rev).id)
                substitute = BaseSubstitute(requested, shown, len(first), skipped)
            return tree, checked, candidates, substitute
        if first is None:
            first = checked.diagnostics
        if not commit.parents:
            break
        commit = commit.parents[0]
    raise BaseInvalid(first or [])


def _checked(
    tree: GitTree, builtin: tuple[Tree, str], sites: set[str], cache: ParseCache
) -> Checked:
    checked = check_repository(tree, builtin=builtin, sites=sites, cache=cache)
    if checked.diagnostics:
        raise FleetError(checked.diagnostics)
    return checked


def _waves(checked: Checked) -> list[Wave]:
    assert checked.repo.fleet is not None  # a repository that validates has one
    waves = checked.repo.fleet.model.spec.rollout.waves
    return [Wave(w.name, dict(w.selector.labels)) for w in waves]


def _place(checked: Checked, site: str) -> SitePlace | None:
    files = checked.repo.sites.get(site)
    if files is None or files.site is None:
        return None
    spec = files.site.model.spec
    return SitePlace(
        labels=dict(files.site.model.metadata.labels),
        timezone=spec.timezone,
        windows=tuple(
            MaintenanceWindow(days=list(w.days), start=w.start, duration=w.duration)
            for w in spec.maintenanceWindows
        ),
    )


def _secrets(checked: Checked, sites: list[str]) -> set[str]:
    index = build_index(checked.repo)
    found: set[str] = set()
    for site in sites:
        if site in checked.repo.sites:
            found |= sensitive_values(checked.repo.sites[site], index)
    return found


def _digests(checked: Checked, sites: set[str]) -> dict[str, str]:
    index = build_index(checked.repo)  # once: it reads every site loaded
    return {
        site: input_digest(checked.repo, site, index, checked.registry)
        for site in sites
        if site in checked.repo.sites
    }


def _render(
    checked: Checked, tree: GitTree, sites: list[str], renderer: Renderer
) -> dict[str, dict[str, DesiredState]]:
    present = [s for s in sites if s in checked.repo.sites]
    return render_sites(
        checked.repo, checked.registry, revision=tree.commit, sites=present, renderer=renderer
    )
