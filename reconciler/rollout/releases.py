"""What the reconcile loop hands the rollout service: a whole release per good revision.

A :class:`Release` holds every site of the revision, unchanged sites too, so the service
can tell what changed against what each appliance runs and is served now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.contract import DesiredState, MaintenanceWindow

from ..planning.waves import Wave


@dataclass(frozen=True)
class SiteRelease:
    """One site at one revision."""

    site: str
    labels: Mapping[str, str]
    timezone: str  # IANA
    maintenance_windows: tuple[MaintenanceWindow, ...]
    states: Mapping[str, DesiredState]  # by appliance ID
    names: Mapping[str, str] = field(default_factory=dict)  # appliance -> its `name` tag
    descriptions: Mapping[str, str] = field(default_factory=dict)  # cluster -> description


@dataclass(frozen=True)
class Release:
    """A good revision: rollout settings from fleet.yaml and every site's states."""

    revision: str  # commit sha
    waves: tuple[Wave, ...]
    max_failures: int | str  # a count, or a percentage of a wave's sites such as "10%"
    soak_seconds: float
    sites: Mapping[str, SiteRelease]
    author: str = ""  # the commit's author and subject, for operators
    subject: str = ""
    # the canonical JSON of states, by digest, where rendering made it already (the rest is
    # made from the states); checked against the digests before it is stored
    documents: Mapping[str, str] = field(default_factory=dict)
    # of those, the signatures of their served documents at this revision, by digest, where
    # rendering made them (the rest are signed when served)
    signatures: Mapping[str, str] = field(default_factory=dict)
    # states the caller holds already, by digest (the last release's): what an appliance is
    # served now is read from the store only when it is not among them
    earlier: Mapping[str, DesiredState] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Why this release cannot be recorded; empty when it can."""
        found: list[str] = []
        if not self.waves:
            found.append("a release needs at least one wave")
        owner: dict[str, str] = {}
        for name, site in sorted(self.sites.items()):
            if site.site != name:
                found.append(f"site {name!r} is keyed under another name ({site.site!r})")
            for appliance, state in sorted(site.states.items()):
                if appliance in owner:
                    found.append(f"appliance {appliance} is in sites {owner[appliance]} and {name}")
                owner[appliance] = name
                if state.appliance != appliance or state.site != name:
                    found.append(
                        f"state keyed {name}/{appliance} is for {state.site}/{state.appliance}"
                    )
        return found

    def clusters(self) -> set[tuple[str, str]]:
        """Every cluster of the release, as (site, cluster)."""
        return {
            (name, cluster.name)
            for name, site in self.sites.items()
            for state in site.states.values()
            for cluster in state.clusters
        }

    def states(self) -> dict[str, DesiredState]:
        """Every appliance's state, by appliance ID."""
        return {a: s for site in self.sites.values() for a, s in site.states.items()}
