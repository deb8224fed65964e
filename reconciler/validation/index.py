"""Look-ups shared by the rules: profiles by name and version, appliances by ID."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..loading import Doc, FleetRepo, SiteFiles
from ..models import Appliance, ClusterProfile


@dataclass
class FleetIndex:
    """Fleet-wide tables built once per validation run."""

    profiles: dict[tuple[str, str], Doc[ClusterProfile]] = field(default_factory=dict)
    appliances: dict[str, list[tuple[str, Doc[Appliance]]]] = field(default_factory=dict)
    broken: set[tuple[str, str]] = field(default_factory=set)

    def profile(self, site: SiteFiles, name: str, version: str) -> Doc[ClusterProfile] | None:
        """A site's own profile first, then the fleet's."""
        for doc in site.profiles:
            if doc.model.metadata.name == name and doc.model.metadata.version == version:
                return doc
        return self.profiles.get((name, version))

    def profile_versions(self, site: SiteFiles, name: str) -> list[str]:
        found = {v for (n, v) in self.profiles if n == name}
        found |= {d.model.metadata.version for d in site.profiles if d.model.metadata.name == name}
        return sorted(found)


def build_index(repo: FleetRepo) -> FleetIndex:
    index = FleetIndex(broken=repo.broken)
    for doc in repo.profiles:
        meta = doc.model.metadata
        index.profiles[(meta.name, meta.version)] = doc
    for name, site in repo.sites.items():
        for appliance in site.appliances:
            index.appliances.setdefault(appliance.model.metadata.name, []).append((name, appliance))
    return index
