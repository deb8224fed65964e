"""Turning a release into rollout rows: what changed for each appliance against what it is
served now, which sites revert to a state they already ran healthy, which changes disrupt
nodes, and in which order a cluster's appliances take a disruptive change.

Called by the service inside the transaction that records the release; pure over its inputs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.contract import DesiredState, canonical_json

from ..store import Assignment, EventRecord, RolloutRecord, RolloutSite, RolloutTarget
from .releases import Release, SiteRelease
from .waves import wave_of


@dataclass
class ReleasePlan:
    rollout: RolloutRecord
    documents: dict[str, str] = field(default_factory=dict)  # digest -> canonical content
    sites: list[RolloutSite] = field(default_factory=list)
    targets: list[RolloutTarget] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # appliances no longer in the fleet
    events: list[EventRecord] = field(default_factory=list)


def plan_release(
    release: Release,
    *,
    seq: int,
    current: Mapping[str, Assignment],
    served_content: Mapping[str, str],
    healthy: set[tuple[str, str]],
    now: float,
) -> ReleasePlan:
    """``current``: every appliance's assignment; ``served_content``: the documents they are
    served, by digest; ``healthy``: (appliance, digest) pairs that once ran healthy."""
    waves = [{"name": w.name, "labels": dict(w.labels)} for w in release.waves]
    rollout = RolloutRecord(
        revision=release.revision,
        seq=seq,
        state="running",
        wave=0,
        waves=tuple(waves),
        max_failures=str(release.max_failures),
        soak_seconds=float(release.soak_seconds),
        failing=(),
        started_at=now,
        updated_at=now,
    )
    plan = ReleasePlan(rollout=rollout)
    declared: set[str] = set()
    for name, site in sorted(release.sites.items()):
        targets = _targets(release.revision, site, current, served_content, now)
        declared.update(site.states)
        changed = [t for t in targets if t.changed]
        revert = bool(changed) and all(
            t.digest is not None and (t.appliance, t.digest) in healthy for t in changed
        )
        plan.sites.append(
            RolloutSite(
                revision=release.revision,
                site=name,
                wave=wave_of(site.labels, release.waves),
                labels=dict(site.labels),
                timezone=site.timezone,
                windows=tuple(w.model_dump(mode="json") for w in site.maintenance_windows),
                changed=bool(changed),
                revert=revert,
                state="pending" if changed else "unchanged",
            )
        )
        plan.targets.extend(targets)
        for appliance, state in site.states.items():
            plan.documents[state.digest] = canonical_json(state.content()).decode()
            before = current.get(appliance)
            unchanged = before is not None and before.served_digest == state.digest
            plan.assignments.append(
                Assignment(
                    appliance=appliance,
                    site=name,
                    declared=True,
                    served_digest=before.served_digest if before else None,
                    served_revision=release.revision
                    if unchanged
                    else (before.served_revision if before else None),
                    served_at=before.served_at if before else None,
                    target_digest=state.digest,
                    target_revision=release.revision,
                )
            )
    for appliance, before in sorted(current.items()):
        if appliance not in declared and before.declared:
            plan.removed.append(appliance)
            plan.assignments.append(
                Assignment(appliance=appliance, site=before.site, declared=False)
            )
            plan.events.append(
                EventRecord(
                    at=now,
                    level="warning",
                    kind="appliance-removed",
                    message=f"{appliance} is no longer in the fleet repository",
                    site=before.site,
                    appliance=appliance,
                    revision=release.revision,
                )
            )
    return plan


def _targets(
    revision: str,
    site: SiteRelease,
    current: Mapping[str, Assignment],
    served_content: Mapping[str, str],
    now: float,
) -> list[RolloutTarget]:
    spans = Counter(
        cluster.name
        for state in site.states.values()
        for cluster in state.clusters
        if any(n.appliance == state.appliance for n in cluster.nodes)
    )
    out = []
    for appliance, state in sorted(site.states.items()):
        before = current.get(appliance)
        served = before.served_digest if before else None
        changed = served != state.digest
        clusters = tuple(sorted({c.name for c in state.clusters}))
        disruptive = changed and (
            site.disruptive.get(appliance, False)
            or (served is not None and nodes_replaced(served_content.get(served), state))
        )
        out.append(
            RolloutTarget(
                revision=revision,
                appliance=appliance,
                site=site.site,
                digest=state.digest,
                changed=changed,
                disruptive=disruptive,
                clusters=clusters,
                shared=tuple(c for c in clusters if spans[c] > 1),
                control_plane=any(
                    n.role == "control-plane" for c in state.clusters for n in c.nodes
                ),
                released_at=None if changed else now,
            )
        )
    return out


def nodes_replaced(served: str | None, target: DesiredState) -> bool:
    """Whether going from the served document to ``target`` removes or changes a node.

    A second opinion next to the loop's ``disruptive`` flag, which compares consecutive
    revisions: when a rollout was superseded half-way, what an appliance is served may be
    older than the previous revision, and only this comparison sees that difference.
    """
    if served is None:
        return False
    before = _nodes(json.loads(served))
    after = _nodes(target.content())
    return any(name not in after or after[name] != spec for name, spec in before.items())


def _nodes(content: Mapping[str, Any]) -> dict[str, str]:
    nodes: dict[str, str] = {}
    for cluster in content.get("clusters", []):
        if cluster.get("phase", "present") != "present":
            continue
        for node in cluster.get("nodes", []):
            nodes[f"{cluster['name']}/{node['name']}"] = json.dumps(node, sort_keys=True)
    return nodes
