"""Small fleets as the reconcile loop would hand them over: releases of sealed
DesiredStates shaped like the rendered example fleet (one cluster per site, a node per
appliance, control-plane nodes carrying the manifests)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.contract import (
    ClusterState,
    DesiredState,
    MaintenanceWindow,
    ManifestFile,
    Node,
    PackRef,
    PatchSchedule,
    Pool,
    seal,
)
from reconciler.rollout import Release, SiteRelease, Wave


@dataclass(frozen=True)
class SiteSpec:
    name: str
    appliances: tuple[str, ...]
    control_plane: tuple[str, ...]  # appliances hosting a control-plane node
    labels: Mapping[str, str] = field(default_factory=dict)
    timezone: str = "UTC"
    windows: tuple[MaintenanceWindow, ...] = ()


def site(
    name: str,
    *appliances: str,
    control_plane: Iterable[str] | None = None,
    ring: str = "general",
    timezone: str = "UTC",
    windows: Iterable[MaintenanceWindow] = (),
) -> SiteSpec:
    members = appliances or (f"{name}-edge",)
    return SiteSpec(
        name=name,
        appliances=tuple(members),
        control_plane=tuple(control_plane) if control_plane is not None else members[:1],
        labels={"ring": ring},
        timezone=timezone,
        windows=tuple(windows),
    )


def revision(label: str) -> str:
    """A commit sha made up from a label, so each test's revisions are distinct."""
    return hashlib.sha1(label.encode()).hexdigest()


def states(spec: SiteSpec, rev: str, *, manifest: str, image: str) -> dict[str, DesiredState]:
    cluster = f"{spec.name}-store"
    pools = [
        Pool(
            name="main",
            controlPlane=True,
            size=len(spec.control_plane),
            updateStrategy="expand-first",
        )
    ]
    workers = [a for a in spec.appliances if a not in spec.control_plane]
    if workers:
        pools.append(
            Pool(
                name="workers", controlPlane=False, size=len(workers), updateStrategy="expand-first"
            )
        )
    out = {}
    for appliance in spec.appliances:
        cp = appliance in spec.control_plane
        node = Node(
            name=f"{cluster}-{appliance}",
            pool="main" if cp else "workers",
            role="control-plane" if cp else "worker",
            appliance=appliance,
            workerCapable=True,
            image=image,
            userData="#cloud-config\n",
        )
        state = ClusterState(
            name=cluster,
            mode="containerized",
            packs=[PackRef(name="k3s", version="1.30.4", layer="k8s")],
            pools=pools,
            nodes=[node],
            manifests=(
                [ManifestFile(layer="addon", pack="pos", name="pos.yaml", content=manifest)]
                if cp
                else []
            ),
            schedules=[
                PatchSchedule(name="os", cron="0 3 * * sun", timezone=spec.timezone)
            ],
            maintenanceWindows=list(spec.windows),
            timezone=spec.timezone,
        )
        out[appliance] = seal(appliance=appliance, site=spec.name, revision=rev, clusters=[state])
    return out


WAVES = (Wave("canary", {"ring": "canary"}), Wave("everyone", {}))


def release(
    rev: str,
    specs: Iterable[SiteSpec],
    *,
    manifest: str = "v1",
    image: str = "rancher/k3s:v1.30.4-k3s1",
    manifests: Mapping[str, str] | None = None,
    images: Mapping[str, str] | None = None,
    waves: tuple[Wave, ...] = WAVES,
    max_failures: int | str = 0,
    soak_seconds: float = 0,
) -> Release:
    """Every site at ``manifest``/``image`` unless ``manifests``/``images`` say otherwise
    for a site (a new image replaces nodes: a disruptive change)."""
    manifests, images = manifests or {}, images or {}
    sites = {}
    for spec in specs:
        site_states = states(
            spec,
            rev,
            manifest=manifests.get(spec.name, manifest),
            image=images.get(spec.name, image),
        )
        sites[spec.name] = SiteRelease(
            site=spec.name,
            labels=dict(spec.labels),
            timezone=spec.timezone,
            maintenance_windows=spec.windows,
            states=site_states,
        )
    return Release(rev, waves, max_failures, soak_seconds, sites)


def digests(rel: Release) -> dict[str, str]:
    return {a: s.digest for site in rel.sites.values() for a, s in site.states.items()}
