"""Rules over the whole fleet: rollout waves, backup locations, unique appliance IDs."""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import Diagnostic
from ..loading import FleetRepo
from .index import FleetIndex


def check_fleet(repo: FleetRepo) -> Iterator[Diagnostic]:
    if repo.fleet is None:
        return
    doc = repo.fleet
    spec = doc.model.spec
    waves = spec.rollout.waves
    seen: set[str] = set()
    for i, wave in enumerate(waves):
        if wave.name in seen:
            yield doc.at(("spec", "rollout", "waves", i, "name"), f"wave '{wave.name}' is twice")
        seen.add(wave.name)
        if not wave.selector.labels and i != len(waves) - 1:
            yield doc.at(
                ("spec", "rollout", "waves", i),
                f"only the last wave may select every site (wave '{wave.name}' has no labels)",
            )
    names: set[str] = set()
    for i, location in enumerate(spec.backupLocations):
        if location.name in names:
            yield doc.at(
                ("spec", "backupLocations", i, "name"),
                f"backup location '{location.name}' is defined twice",
            )
        names.add(location.name)
    for i, folder in enumerate(spec.packRegistries):
        if not any(True for _ in repo.tree.files(folder.strip("/"))):
            yield doc.at(
                ("spec", "packRegistries", i), f"pack registry folder '{folder}' does not exist"
            )


def check_waves_cover_sites(repo: FleetRepo) -> Iterator[Diagnostic]:
    if repo.fleet is None:
        return
    waves = repo.fleet.model.spec.rollout.waves
    for site in repo.sites.values():
        if site.site is None:
            continue
        labels = site.site.model.metadata.labels
        if not any(
            all(labels.get(k) == v for k, v in wave.selector.labels.items()) for wave in waves
        ):
            yield site.site.at(
                ("metadata", "labels"),
                f"site '{site.name}' matches no rollout wave in fleet.yaml, so it would never "
                "receive a change",
            )


def check_appliance_ids(index: FleetIndex) -> Iterator[Diagnostic]:
    for appliance_id, places in index.appliances.items():
        if len(places) < 2:
            continue
        first_site, first = places[0]
        for _site, doc in places[1:]:
            yield doc.at(
                ("metadata", "name"),
                f"appliance ID '{appliance_id}' is already used in site '{first_site}' "
                f"({first.path})",
            )


def check_profile_shadowing(repo: FleetRepo, index: FleetIndex) -> Iterator[Diagnostic]:
    for site in repo.sites.values():
        for doc in site.profiles:
            meta = doc.model.metadata
            fleet_doc = index.profiles.get((meta.name, meta.version))
            if fleet_doc is not None:
                yield doc.at(
                    ("metadata", "name"),
                    f"profile {meta.name} {meta.version} is already defined fleet-wide in "
                    f"{fleet_doc.path}; give the site profile another name or version",
                )
