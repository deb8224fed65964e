"""The cross-document rules of a fleet repository: :func:`validate` runs every rule and returns
every problem, sorted by file and line. A repository with no diagnostics is safe to render.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..collector import paused_collector
from ..errors import Diagnostic, masked
from ..loading import FleetRepo, ParseCache, load_repository
from ..packs import PackRegistry, load_registry
from ..sources import Tree
from .clusters import (
    Mode,
    ResolvedCluster,
    ResolvedLayer,
    check_appliance_sharing,
    check_cluster,
    fleet_secrets,
    resolve_cluster,
    sensitive_values,
)
from .fleetwide import (
    check_appliance_ids,
    check_fleet,
    check_profile_shadowing,
    check_waves_cover_sites,
)
from .index import FleetIndex, build_index
from .profiles import check_profile
from .secrets import (
    age_recipients,
    check_file_places,
    check_recipients,
    check_sealed_files,
    plaintext_secrets,
)
from .sites import check_site

__all__ = [
    "Checked",
    "age_recipients",
    "FleetIndex",
    "Mode",
    "ResolvedCluster",
    "ResolvedLayer",
    "build_index",
    "check_repository",
    "fleet_secrets",
    "plaintext_secrets",
    "registry_roots",
    "resolve_cluster",
    "sensitive_values",
    "validate",
]


def validate(
    repo: FleetRepo, registry: PackRegistry, *, sites: set[str] | None = None
) -> list[Diagnostic]:
    """Every problem in ``repo`` (loading problems included), sorted by file and line.

    ``sites`` limits the per-site rules to those sites; fleet-wide rules always run.
    """
    found = list(repo.diagnostics)
    index = build_index(repo)
    fleet = repo.fleet.model if repo.fleet is not None else None
    found += check_fleet(repo)
    found += check_waves_cover_sites(repo)
    found += check_appliance_ids(index)
    found += check_profile_shadowing(repo, index)
    found += check_file_places(repo)
    found += check_sealed_files(repo)
    for profile in repo.profiles:
        found += check_profile(profile, registry)
    for name, site in repo.sites.items():
        if sites is not None and name not in sites:
            continue
        found += check_site(site)
        for profile in site.profiles:
            found += check_profile(profile, registry)
        found += check_appliance_sharing(site)
        for cluster in site.clusters:
            resolved, problems = resolve_cluster(site, cluster, index, registry)
            found += problems
            if resolved is not None:
                found += check_cluster(site, cluster, resolved, index, fleet)
                found += check_recipients(repo, site, cluster, resolved)
    return sorted(set(found))


def registry_roots(repo: FleetRepo, builtin: tuple[Tree, str]) -> list[tuple[Tree, str]]:
    """Where a repository's packs come from: built-ins first, so the repository's own win."""
    roots: list[tuple[Tree, str]] = [builtin, (repo.tree, "packs")]
    roots += [(repo.tree, folder.strip("/")) for folder in repo.pack_registries or ()]
    return roots


@dataclass(frozen=True)
class Checked:
    """A loaded repository, its pack registry, and every problem found in them."""

    repo: FleetRepo
    registry: PackRegistry
    diagnostics: list[Diagnostic]


def check_repository(
    tree: Tree,
    *,
    builtin: tuple[Tree, str],
    cache: ParseCache | None = None,
    sites: Iterable[str] | None = None,
) -> Checked:
    """Load ``tree``, index its packs, and run every rule; with ``sites``, only those sites are
    read and checked (fleet-wide rules then see only them)."""
    with paused_collector(set_aside=True):
        repo = load_repository(tree, cache=cache, sites=sites)
        registry, pack_problems = load_registry(
            registry_roots(repo, builtin), partial=repo.pack_registries is None
        )
        diagnostics = sorted(set(validate(repo, registry) + pack_problems))
    if diagnostics:  # no sensitive value is ever printed, annotated or recorded
        diagnostics = masked(diagnostics, fleet_secrets(repo, build_index(repo)))
    return Checked(repo, registry, diagnostics)
