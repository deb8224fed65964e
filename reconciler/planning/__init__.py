"""Plan: exactly what a change between two commits does to each site.

Only the sites a change can touch are read and rendered (:mod:`.impact`), so the cost follows
the size of the change, not of the fleet; the renderings are compared in :mod:`.changes`.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.contract import DesiredState

from ..errors import FleetError
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
from .impact import candidate_sites, input_digest, site_names

__all__ = [
    "ApplianceChange",
    "BaseInvalid",
    "ClusterChange",
    "NodeChange",
    "Plan",
    "SiteChange",
    "compare_site",
    "disruptive",
    "make_plan",
]


class BaseInvalid(FleetError):
    """The revision a plan compares against does not validate."""


@dataclass(frozen=True)
class Plan:
    base: str
    head: str
    total_sites: int
    sites: tuple[SiteChange, ...]
    rendered_sites: int  # how many sites had to be rendered to find this out

    @property
    def summary(self) -> str:
        replacing = sum(1 for s in self.sites for c in s.clusters if c.replaces_nodes)
        deleted = sum(1 for s in self.sites for c in s.clusters if c.kind == "removed")
        added = sum(1 for s in self.sites for c in s.clusters if c.kind == "added")
        parts = [f"{len(self.sites)} of {self.total_sites} sites change"]
        if replacing:
            verb = "replaces" if replacing == 1 else "replace"
            parts.append(f"{replacing} {_clusters(replacing)} {verb} nodes")
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
) -> Plan:
    """Compare two revisions; raises FleetError when the head (or base) does not validate or
    render, and SourceError when a revision does not resolve."""
    base, head = git.tree(base_rev), git.tree(head_rev)
    renderer = renderer or Renderer()
    candidates = candidate_sites(changed_paths(base, head), [base, head])
    before = _checked(base, builtin, candidates, "base")
    after = _checked(head, builtin, candidates, "head")
    changed = sorted(site for site in candidates if _digest(before, site) != _digest(after, site))
    old = _render(before, base, changed, renderer)
    new = _render(after, head, changed, renderer)
    secrets = _secrets(before, changed) | _secrets(after, changed)
    sites = []
    for site in changed:
        change = compare_site(site, old.get(site, {}), new.get(site, {}), mask=secrets)
        if change is not None:
            sites.append(change)
    return Plan(base.commit, head.commit, len(site_names(head)), tuple(sites), len(changed))


def _checked(tree: GitTree, builtin: tuple[Tree, str], sites: set[str], side: str) -> Checked:
    checked = check_repository(tree, builtin=builtin, sites=sites)
    if checked.diagnostics:
        raise (BaseInvalid if side == "base" else FleetError)(checked.diagnostics)
    return checked


def _secrets(checked: Checked, sites: list[str]) -> set[str]:
    index = build_index(checked.repo)
    found: set[str] = set()
    for site in sites:
        if site in checked.repo.sites:
            found |= sensitive_values(checked.repo.sites[site], index)
    return found


def _digest(checked: Checked, site: str) -> str | None:
    if site not in checked.repo.sites:
        return None
    index = build_index(checked.repo)
    return input_digest(checked.repo, site, index, checked.registry)


def _render(
    checked: Checked, tree: GitTree, sites: list[str], renderer: Renderer
) -> dict[str, dict[str, DesiredState]]:
    present = [s for s in sites if s in checked.repo.sites]
    return render_sites(
        checked.repo, checked.registry, revision=tree.commit, sites=present, renderer=renderer
    )
