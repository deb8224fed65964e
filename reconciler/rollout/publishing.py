"""Turning a release into rollout rows: what changed for each appliance against what it is
served now, which sites revert to a state they already ran healthy, which changes disrupt
nodes, and in which order a cluster's appliances take a disruptive change.

Called by the service inside the transaction that records the release; pure over its inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import TypeAdapter

from agent.contract import ClusterState, DesiredState, canonical_json

from ..planning import disruptive
from ..planning.waves import wave_of
from ..store import Assignment, EventRecord, RolloutRecord, RolloutSite, RolloutTarget, Streak
from .releases import Release, SiteRelease

_CLUSTERS = TypeAdapter(list[ClusterState])
MAX_TEXT = 200  # display names and cluster descriptions kept for operators


@dataclass
class ReleasePlan:
    rollout: RolloutRecord
    documents: dict[str, str] = field(default_factory=dict)  # digest -> canonical content
    encoded: dict[str, bytes] = field(default_factory=dict)  # of those, the bytes to serve
    sites: list[RolloutSite] = field(default_factory=list)
    targets: list[RolloutTarget] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # appliances no longer in the fleet
    events: list[EventRecord] = field(default_factory=list)


def new_documents(
    release: Release, known: set[str]
) -> tuple[dict[str, str], dict[str, bytes], list[str]]:
    """The canonical JSON of every state whose digest is not stored yet (``known``), each
    serialized once, as text (what the store keeps) and as bytes (what is served); and the
    states whose digest does not match their content."""
    documents: dict[str, str] = {}
    encoded: dict[str, bytes] = {}
    forged: list[str] = []
    for appliance, state in sorted(release.states().items()):
        if state.digest in known or state.digest in documents:
            continue
        made = release.documents.get(state.digest)
        content = made.encode() if made is not None else canonical_json(state.content())
        if "sha256:" + hashlib.sha256(content).hexdigest() != state.digest:
            forged.append(f"{state.site}/{appliance}: digest does not match the document")
            continue
        documents[state.digest] = made if made is not None else content.decode()
        encoded[state.digest] = content
    return documents, encoded, forged


def plan_release(
    release: Release,
    *,
    seq: int,
    current: Mapping[str, Assignment],
    served_clusters: ServedClusters,
    healthy: set[tuple[str, str]],
    streaks: Mapping[str, Streak],
    documents: dict[str, str],
    encoded: dict[str, bytes] | None = None,
    now: float,
) -> ReleasePlan:
    """``current``: every appliance's assignment; ``served_clusters``: the clusters of the
    documents they are served, by digest; ``healthy``: (appliance, digest) pairs that once
    ran healthy; ``streaks``: what each appliance runs healthy now, proven or not;
    ``documents``: the canonical JSON of the states not stored yet, by digest, and
    ``encoded``: (some of) their bytes, kept to be served."""
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
    plan = ReleasePlan(rollout=rollout, documents=documents, encoded=encoded or {})
    declared: set[str] = set()
    for name, site in sorted(release.sites.items()):
        targets = _targets(release.revision, site, current, served_clusters, healthy, streaks, now)
        declared.update(site.states)
        changed = [t for t in targets if t.changed]
        revert = bool(changed) and all(t.revert or t.released_at is not None for t in changed)
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
                descriptions={c: d[:MAX_TEXT] for c, d in site.descriptions.items() if d},
            )
        )
        plan.targets.extend(targets)
        for appliance, state in site.states.items():
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
                    display_name=site.names.get(appliance, "")[:MAX_TEXT] or None,
                )
            )
    for appliance, before in sorted(current.items()):
        if appliance not in declared and before.declared:
            # served an empty state at once (its clusters left Git with it) until it reports
            # its nodes gone; then its token is revoked (see the service's report handling)
            empty, content = emptied(appliance, before.site, release.revision)
            documents.setdefault(empty, content)
            plan.removed.append(appliance)
            plan.assignments.append(
                Assignment(
                    appliance=appliance,
                    site=before.site,
                    declared=False,
                    served_digest=empty,
                    served_revision=release.revision,
                    served_at=now,
                )
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


def emptied(appliance: str, site: str, revision: str) -> tuple[str, str]:
    """The digest and canonical content of the empty state an appliance removed from the
    fleet repository is served: no clusters, so its agent removes every node it runs."""
    state = DesiredState(appliance=appliance, site=site, revision=revision, digest="", clusters=[])
    content = canonical_json(state.content())
    return "sha256:" + hashlib.sha256(content).hexdigest(), content.decode()


def _targets(
    revision: str,
    site: SiteRelease,
    current: Mapping[str, Assignment],
    served_clusters: ServedClusters,
    healthy: set[tuple[str, str]],
    streaks: Mapping[str, Streak],
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
        streak = streaks.get(appliance)
        proven = streak is not None and streak.digest == state.digest and streak.proven_at
        clusters = tuple(sorted({c.name for c in state.clusters}))
        out.append(
            RolloutTarget(
                revision=revision,
                appliance=appliance,
                site=site.site,
                digest=state.digest,
                changed=not proven,
                revert=served != state.digest and (appliance, state.digest) in healthy,
                disruptive=served is not None
                and served != state.digest
                and disruptive(served_clusters.of(served), state.clusters),
                clusters=clusters,
                shared=tuple(c for c in clusters if spans[c] > 1),
                control_plane=any(
                    n.role == "control-plane" for c in state.clusters for n in c.nodes
                ),
                released_at=now if served == state.digest else None,
            )
        )
    return out


class ServedClusters:
    """The clusters of the documents appliances are served, by digest: from states held in
    memory where they are, else read from the stored canonical JSON (once each)."""

    def __init__(
        self, held: Mapping[str, Sequence[ClusterState]], stored: Mapping[str, str]
    ) -> None:
        self._held = dict(held)
        self._stored = stored

    def of(self, digest: str) -> Sequence[ClusterState]:
        """Those of ``digest``; none when its document is unknown (nothing to disrupt)."""
        found = self._held.get(digest)
        if found is None:
            text = self._stored.get(digest)
            found = _CLUSTERS.validate_python(json.loads(text).get("clusters", [])) if text else []
            self._held[digest] = found
        return found
