"""Reading fleet and site status out of the store, and the figures ``/metrics`` exports.

Each view is read in one store transaction and built from rows; nothing here writes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from agent.contract import ClusterStatus, MaintenanceWindow, StatusReport
from agent.windows import next_opening, window_open

from ..clocks import Clock, epoch
from ..rollout.health import parse_report
from ..store import (
    AgentRecord,
    Assignment,
    Control,
    DeliveryRecord,
    EventRecord,
    ReportRecord,
    RevisionRecord,
    RolloutRecord,
    RolloutSite,
    RolloutTarget,
    SiteQuery,
    Store,
    Transaction,
    WaveCount,
)
from ..store.figures import Census
from .documents import (
    ApplianceCounts,
    ApplianceTotals,
    ApplianceView,
    ClusterSummary,
    ClusterView,
    DecommissionedView,
    DeliveryView,
    EventView,
    FailureView,
    FleetView,
    NodeView,
    Overview,
    ReportingView,
    RevisionDetail,
    RevisionSummary,
    RevisionsView,
    RevisionView,
    RolloutView,
    SiteFailure,
    SiteList,
    SiteSummary,
    SiteView,
    SourceView,
    TaskView,
    WaveView,
)
from .statuses import (
    appliance_health,
    appliance_status,
    cluster_phase,
    cluster_progress,
    health_of,
    status_of,
)


@dataclass(frozen=True)
class RolloutFigures:
    short: str
    state: str
    wave: int
    changed: int
    done: int
    failed: int

    @property
    def progress(self) -> float:
        return (self.done + self.failed) / self.changed if self.changed else 1.0


@dataclass(frozen=True)
class Figures:
    """What ``/metrics`` exports, read in one go from aggregates."""

    revisions: dict[str, int]
    reconcile_buckets: list[int]  # cumulative counts at or under each of BUCKETS
    reconcile_count: int
    reconcile_sum: float
    appliances: dict[tuple[str, str], int]  # (status, health) -> count
    rollout: RolloutFigures | None


PER_PAGE = 50
FAILURES_SHOWN = 20  # failing sites the overview names, each with its revert
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class FleetViews:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        heartbeat_timeout: float = 90.0,
        source: Callable[[], SourceView | None] = lambda: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._timeout = heartbeat_timeout
        self._source = source  # the followed repository's fetch status, kept by the loop

    def fleet(self) -> FleetView:
        with self._store.read() as tx:
            rows = _Rows.load(tx)
            events = tx.events.recent(fleet=True, limit=20)
            deliveries = tx.deliveries.recent(limit=10)
            delivery_counts = tx.deliveries.counts() if deliveries else {}
        now = epoch(self._clock)
        sites = sorted({a.site for a in rows.assignments.values() if a.declared})
        good, failed = rows.good, rows.failed
        return FleetView(
            generatedAt=_time(now),
            revision=_revision(good) if good else None,
            lastFailure=_failure(failed, good) if failed else None,
            source=self._source(),
            rollout=_rollout(rows) if rows.rollout else None,
            sites=[self._summary(name, rows, now) for name in sites],
            discovered=[
                self._appliance(agent.appliance, rows, now)
                for agent in rows.agents.values()
                if not _declared(rows.assignments.get(agent.appliance))
            ],
            decommissioned=[
                DecommissionedView(
                    appliance=a.appliance, site=a.site, at=_time(a.decommissioned_at)
                )
                for a in sorted(rows.assignments.values(), key=lambda a: a.appliance)
                if a.decommissioned_at is not None
            ],
            events=[_event(e) for e in events],
            reporting=(
                ReportingView(counts=delivery_counts, recent=[_delivery(d) for d in deliveries])
                if deliveries
                else None
            ),
        )

    def site(self, name: str) -> SiteView | None:
        with self._store.read() as tx:
            rows = _Rows.load(tx, sites=[name])
            events = tx.events.recent(site=name, limit=50)
        appliances = rows.site_appliances(name)
        if not appliances:
            return None
        now = epoch(self._clock)
        summary = self._summary(name, rows, now)
        row = rows.sites.get(name)
        windows = [MaintenanceWindow.model_validate(w) for w in row.windows] if row else []
        at = _time(now)
        return SiteView(
            name=name,
            wave=summary.wave,
            state=summary.state,
            waiting=summary.waiting,
            labels=dict(row.labels) if row else {},
            timezone=row.timezone if row else None,
            windows=windows,
            windowOpen=window_open(windows, row.timezone, at) if row else False,
            nextWindow=next_opening(windows, row.timezone, at) if row else None,
            revision=summary.revision,
            targetRevision=summary.targetRevision,
            health=summary.health,
            appliances=[self._appliance(a, rows, now) for a in appliances],
            clusters=self._clusters(name, rows),
            events=[_event(e) for e in events],
        )

    def figures(self) -> Figures:
        now = epoch(self._clock)
        with self._store.read() as tx:
            census = tx.figures.census(seen_after=now - self._timeout)
            revisions = tx.revisions.counts()
            buckets, count, total = tx.figures.reconcile_histogram(BUCKETS)
            rollout = tx.rollouts.latest()
            states = tx.figures.site_states(rollout.revision) if rollout else {}
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for group in census:
            status = status_of(
                declared=group.declared, registered=group.registered, in_use=bool(group.in_use)
            )
            health = health_of(
                registered=group.registered, fresh=group.fresh, healthy=group.healthy
            )
            counts[(status, health)] += group.count
        figures = None
        if rollout is not None:
            changed = {state: n for (c, state), n in states.items() if c}
            figures = RolloutFigures(
                short=rollout.revision[:7],
                state=rollout.state,
                wave=rollout.wave,
                changed=sum(changed.values()),
                done=changed.get("done", 0),
                failed=changed.get("failed", 0),
            )
        return Figures(
            revisions=revisions,
            reconcile_buckets=buckets,
            reconcile_count=count,
            reconcile_sum=total,
            appliances=dict(counts),
            rollout=figures,
        )

    def revisions(self, limit: int = 50) -> RevisionsView:
        """The newest revisions, good and failed, with their rollout's state."""
        with self._store.read() as tx:
            records = tx.revisions.recent(limit)
            shas = [r.sha for r in records]
            rollouts = tx.rollouts.many(shas)
            changed = tx.rollouts.changed_counts(shas)
        return RevisionsView(
            revisions=[
                RevisionSummary(
                    **_revision(r).model_dump(),
                    outcome=r.outcome,
                    errors=list(r.errors),
                    rollout=rollouts[r.sha].state if r.sha in rollouts else None,
                    sitesChanged=changed.get(r.sha, 0) if r.sha in rollouts else None,
                )
                for r in records
            ]
        )

    def overview(self) -> Overview:
        """The revision, its rollout wave by wave and the fleet's health, from aggregates
        (the failing sites it names are capped at FAILURES_SHOWN)."""
        now = epoch(self._clock)
        with self._store.read() as tx:
            good, failed = tx.revisions.latest("good"), tx.revisions.latest("failed")
            rollout = tx.rollouts.latest()
            paused = tx.controls.get("paused")
            census = tx.figures.census(seen_after=now - self._timeout)
            events = tx.events.recent(fleet=True, limit=20)
            counts: list[WaveCount] = []
            failing: dict[str, RolloutSite] = {}
            culprits: dict[str, list[str]] = {}
            halt = None
            if rollout is not None:
                counts = tx.listings.waves(rollout.revision)
                named = rollout.failing[:FAILURES_SHOWN]
                failing = {s.site: s for s in tx.rollouts.sites_named(rollout.revision, named)}
                for target in tx.rollouts.targets(rollout.revision, sites=named):
                    if target.changed and target.digest is not None:
                        sha = tx.rollouts.introduced(target.appliance, target.digest)
                        if sha is not None and sha not in culprits.setdefault(target.site, []):
                            culprits[target.site].append(sha)
                if rollout.state == "halted":
                    halted = tx.listings.latest_event(rollout.revision, "rollout-halted")
                    halt = halted.message if halted else None
        view = None
        if rollout is not None:
            view = _rollout_view(
                rollout,
                paused,
                failing,
                {site: sorted(shas) for site, shas in culprits.items()},
                changed=sum(c.count for c in counts),
                done=sum(c.count for c in counts if c.state == "done"),
                failed=sum(c.count for c in counts if c.state == "failed"),
            )
        return Overview(
            generatedAt=_time(now),
            revision=_revision(good) if good else None,
            lastFailure=_failure(failed, good) if failed else None,
            rollout=view,
            waves=_waves(rollout, counts) if rollout else [],
            halt=halt,
            appliances=_totals(census),
            events=[_event(e) for e in events],
        )

    def site_list(
        self,
        query: SiteQuery,
        *,
        wave: str | None = None,
        page: int = 1,
        per_page: int = PER_PAGE,
    ) -> SiteList:
        """One page of the current rollout's sites matching ``query`` and in ``wave`` (by
        name), in wave order."""
        now = epoch(self._clock)
        with self._store.read() as tx:
            rollout = tx.rollouts.latest()
            if rollout is None:
                return SiteList(sites=[], total=0, page=1, pages=1, perPage=per_page, waves=[])
            if wave is not None:
                names = [str(w["name"]) for w in rollout.waves]
                query = replace(query, wave=names.index(wave) if wave in names else -1)
            names, total = self._page(tx, rollout.revision, query, now, page, per_page)
            pages = max(1, math.ceil(total / per_page))
            if not names and page > pages:  # past the end: the last page
                page = pages
                names, total = self._page(tx, rollout.revision, query, now, page, per_page)
            rows = _Rows.load(tx, sites=names)
        return SiteList(
            sites=[self._summary(name, rows, now) for name in names],
            total=total,
            page=page,
            pages=pages,
            perPage=per_page,
            waves=[str(w["name"]) for w in rollout.waves],
        )

    def stamp(self) -> tuple[object, ...]:
        """Changes whenever any view may have (what live pages watch)."""
        with self._store.read() as tx:
            return tx.listings.stamp()

    def revision(
        self, sha: str, *, page: int = 1, per_page: int = PER_PAGE
    ) -> RevisionDetail | None:
        """A revision: outcome, a page of the sites it changed, and its timeline."""
        with self._store.read() as tx:
            record = tx.revisions.get(sha)
            if record is None:
                return None
            rollout = tx.rollouts.get(sha)
            offset = (max(page, 1) - 1) * per_page
            names, total = tx.listings.changed_sites(sha, offset=offset, limit=per_page)
            timeline = tx.listings.timeline(sha)
        summary = RevisionSummary(
            **_revision(record).model_dump(),
            outcome=record.outcome,
            errors=list(record.errors),
            rollout=rollout.state if rollout else None,
            sitesChanged=total if rollout else None,
        )
        return RevisionDetail(
            revision=summary,
            sites=names,
            total=total,
            page=max(page, 1),
            pages=max(1, math.ceil(total / per_page)),
            perPage=per_page,
            timeline=[_event(e) for e in timeline],
        )

    # -- pieces ------------------------------------------------------------------------
    def _page(
        self, tx: Transaction, revision: str, query: SiteQuery, now: float, page: int, per: int
    ) -> tuple[list[str], int]:
        return tx.listings.sites(
            revision,
            query,
            seen_after=now - self._timeout,
            offset=(max(page, 1) - 1) * per,
            limit=per,
        )

    def _summary(self, name: str, rows: _Rows, now: float) -> SiteSummary:
        appliances = rows.site_appliances(name)
        views = [self._appliance(a, rows, now) for a in appliances]
        registered = [v for v in views if v.status != "Unpaired"]
        healthy = sum(v.health == "healthy" for v in registered)
        offline = sum(
            now - agent.last_seen > self._timeout
            for a in appliances
            if (agent := rows.agents.get(a)) is not None
        )
        served = {rows.assignments[a].served_revision for a in appliances}
        targets = {rows.assignments[a].target_revision for a in appliances}
        row = rows.sites.get(name)
        paused = rows.paused is not None and bool(rows.paused.value)
        state, waiting = _site_state(row, rows.rollout, paused=paused)
        return SiteSummary(
            name=name,
            labels=dict(row.labels) if row else {},
            wave=rows.wave_name(row),
            state=state,
            waiting=waiting,
            revision=served.pop() if len(served) == 1 else None,
            targetRevision=targets.pop() if len(targets) == 1 else None,
            health=(
                "unknown"
                if not registered
                else ("healthy" if healthy == len(registered) else "unhealthy")
            ),
            appliances=ApplianceCounts(
                total=len(views),
                healthy=healthy,
                unhealthy=len(registered) - healthy,
                unpaired=len(views) - len(registered),
                offline=offline,
            ),
            clusters=[
                ClusterSummary(name=c.name, phase=c.phase, progress=c.progress)
                for c in self._clusters(name, rows)
            ],
        )

    def _appliance(self, appliance: str, rows: _Rows, now: float) -> ApplianceView:
        assignment = rows.assignments.get(appliance)
        agent = rows.agents.get(appliance)
        record = rows.reports.get(appliance)
        report = rows.parsed(appliance)
        target = rows.targets.get(appliance)
        return ApplianceView(
            id=appliance,
            name=assignment.display_name if assignment else None,
            site=assignment.site if assignment else None,
            status=appliance_status(assignment, agent, report),
            health=appliance_health(agent, record, now=now, timeout=self._timeout),
            hostname=agent.hostname if agent else None,
            ip=agent.ip if agent else None,
            arch=agent.arch if agent else None,
            agentVersion=agent.agent_version if agent else None,
            lastSeen=_time(agent.last_seen) if agent else None,
            servedDigest=assignment.served_digest if assignment else None,
            servedRevision=assignment.served_revision if assignment else None,
            targetDigest=assignment.target_digest if assignment else None,
            targetRevision=assignment.target_revision if assignment else None,
            appliedDigest=report.appliedDigest if report else None,
            waiting=target.waiting if target and target.released_at is None else "",
            error=report.error.message if report and report.error else None,
        )

    def _clusters(self, site: str, rows: _Rows) -> list[ClusterView]:
        on: dict[str, list[str]] = defaultdict(list)  # declared cluster -> appliances
        reported: dict[str, list[tuple[str, ClusterStatus]]] = defaultdict(list)
        for appliance in rows.site_appliances(site):
            target = rows.targets.get(appliance)
            if target is not None and _declared(rows.assignments.get(appliance)):
                for cluster in target.clusters:
                    on[cluster].append(appliance)
            report = rows.parsed(appliance)
            for status in report.clusters if report else []:
                reported[status.name].append((appliance, status))
        views = []
        for name in sorted(set(on) | set(reported)):
            statuses = [s for _, s in reported[name]]
            phase = cluster_phase(len(on[name]), statuses)
            row = rows.sites.get(site)
            views.append(
                ClusterView(
                    name=name,
                    description=row.descriptions.get(name, "") if row else "",
                    phase=phase,
                    progress=cluster_progress(phase, statuses),
                    appliances=sorted(set(on[name]) | {a for a, _ in reported[name]}),
                    nodes=[
                        NodeView(appliance=a, name=n.name, phase=n.phase)
                        for a, s in reported[name]
                        for n in s.nodes
                    ],
                    tasks=[
                        TaskView(
                            appliance=a,
                            name=t.name,
                            state=t.state,
                            progress=t.progress,
                            message=t.message,
                        )
                        for a, s in reported[name]
                        for t in s.tasks
                    ],
                    message="; ".join(f"{a}: {s.message}" for a, s in reported[name] if s.message),
                    scans=[scan for _, s in reported[name] for scan in s.scans],
                    patches=[patch for _, s in reported[name] for patch in s.patches],
                    backup=next((s.backup for _, s in reported[name] if s.backup), None),
                )
            )
        return views


@dataclass
class _Rows:
    good: RevisionRecord | None
    failed: RevisionRecord | None
    rollout: RolloutRecord | None
    sites: dict[str, RolloutSite]
    targets: dict[str, RolloutTarget]
    assignments: dict[str, Assignment]
    agents: dict[str, AgentRecord]
    reports: dict[str, ReportRecord]
    paused: Control | None = None
    culprits: dict[str, list[str]] = field(default_factory=dict)  # failing site -> commits
    _parsed: dict[str, StatusReport | None] = field(default_factory=dict)
    _by_site: dict[str, list[str]] | None = None  # site -> its declared appliances, sorted

    @classmethod
    def load(cls, tx: Transaction, *, sites: Sequence[str] | None = None) -> _Rows:
        """Every row the fleet view shows, or with ``sites`` only those of these sites."""
        rollout = tx.rollouts.latest()
        if sites is None:
            rollout_sites = tx.rollouts.sites(rollout.revision) if rollout else []
            assignments = tx.assignments.all()
            agents = tx.agents.all()
            reports = tx.reports.all()
        else:
            rollout_sites = tx.rollouts.sites_named(rollout.revision, sites) if rollout else []
            assignments = tx.assignments.for_sites(sites)
            appliances = [a.appliance for a in assignments]
            agents = list(tx.agents.get_many(appliances).values())
            reports = list(tx.reports.for_appliances(appliances).values())
        targets = tx.rollouts.targets(rollout.revision, sites=sites) if rollout else []
        rows = cls(
            good=tx.revisions.latest("good"),
            failed=tx.revisions.latest("failed"),
            rollout=rollout,
            sites={s.site: s for s in rollout_sites},
            targets={t.appliance: t for t in targets},
            assignments={a.appliance: a for a in assignments},
            agents={a.appliance: a for a in agents},
            reports={r.appliance: r for r in reports},
            paused=tx.controls.get("paused"),
        )
        failed = {s.site for s in rows.sites.values() if s.state == "failed"}
        brought: dict[str, set[str | None]] = {site: set() for site in failed}
        for t in rows.targets.values():
            if t.site in brought and t.changed and t.digest is not None:
                brought[t.site].add(tx.rollouts.introduced(t.appliance, t.digest))
        rows.culprits = {
            site: sorted(c for c in found if c is not None) for site, found in brought.items()
        }
        return rows

    def site_appliances(self, site: str) -> list[str]:
        """The declared appliances of ``site``, sorted: every site's are grouped at the
        first call (the fleet view asks for each of ten thousand sites)."""
        if self._by_site is None:
            grouped: dict[str, list[str]] = defaultdict(list)
            for a in self.assignments.values():
                if a.declared:
                    grouped[a.site].append(a.appliance)
            self._by_site = {name: sorted(names) for name, names in grouped.items()}
        return self._by_site.get(site, [])

    def parsed(self, appliance: str) -> StatusReport | None:
        if appliance not in self._parsed:
            record = self.reports.get(appliance)
            self._parsed[appliance] = parse_report(record) if record else None
        return self._parsed[appliance]

    def wave_name(self, site: RolloutSite | None) -> str | None:
        if site is None or self.rollout is None or site.wave >= len(self.rollout.waves):
            return None
        return str(self.rollout.waves[site.wave]["name"])


def _declared(assignment: Assignment | None) -> bool:
    return assignment is not None and assignment.declared


def _site_state(
    site: RolloutSite | None, rollout: RolloutRecord | None, *, paused: bool
) -> tuple[str, str]:
    if site is None or rollout is None:
        return "unknown", ""
    if site.state == "unchanged":
        return "up-to-date", ""
    if rollout.state in ("halted", "superseded") and site.state not in ("done", "failed"):
        return f"held ({rollout.state})", site.waiting
    if paused and site.state == "pending":
        return "held (paused)", site.waiting
    return site.state, site.waiting


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _revision(record: RevisionRecord) -> RevisionView:
    return RevisionView(
        sha=record.sha,
        short=record.sha[:7],
        recordedAt=_time(record.recorded_at),
        reconcileSeconds=record.reconcile_seconds,
        author=record.author,
        subject=record.subject,
    )


def _failure(failed: RevisionRecord, good: RevisionRecord | None) -> FailureView:
    return FailureView(
        **_revision(failed).model_dump(),
        errors=list(failed.errors),
        current=good is None or failed.seq > good.seq,
    )


def _rollout(rows: _Rows) -> RolloutView:
    rollout, sites = rows.rollout, rows.sites
    assert rollout is not None
    changed = [s for s in sites.values() if s.changed]
    done = sum(s.state == "done" for s in changed)
    failed = sum(s.state == "failed" for s in changed)
    return _rollout_view(
        rollout, rows.paused, sites, rows.culprits, changed=len(changed), done=done, failed=failed
    )


def _rollout_view(
    rollout: RolloutRecord,
    paused_by: Control | None,
    sites: Mapping[str, RolloutSite],
    culprits: Mapping[str, list[str]],
    *,
    changed: int,
    done: int,
    failed: int,
) -> RolloutView:
    """``sites``: at least the failing sites' rows; ``culprits``: the commits that brought
    each failing site its state."""
    paused = paused_by is not None and bool(paused_by.value)
    names = [str(w["name"]) for w in rollout.waves]
    return RolloutView(
        revision=rollout.revision,
        short=rollout.revision[:7],
        state=rollout.state,
        wave=names[rollout.wave] if rollout.wave < len(names) else None,
        waveIndex=rollout.wave,
        waves=names,
        failing=list(rollout.failing),
        sitesChanged=changed,
        sitesDone=done,
        sitesFailed=failed,
        progress=(done + failed) / changed if changed else 1.0,
        startedAt=_time(rollout.started_at),
        finishedAt=_time(rollout.finished_at) if rollout.finished_at else None,
        paused=paused,
        pausedBy=paused_by.set_by if paused and paused_by else None,
        accepted=list(rollout.accepted),
        failures=[
            SiteFailure(
                site=name,
                error=sites[name].failure or "",
                revert=[f"git revert {sha}" for sha in culprits.get(name, [])],
            )
            for name in rollout.failing
            if name in sites
        ],
    )


def _waves(rollout: RolloutRecord, counts: Sequence[WaveCount]) -> list[WaveView]:
    views = []
    for index, wave in enumerate(rollout.waves):
        mine = [c for c in counts if c.wave == index]

        def count(state: str, mine: list[WaveCount] = mine) -> int:
            return sum(c.count for c in mine if c.state == state)

        window = sum(c.count for c in mine if c.window)
        views.append(
            WaveView(
                name=str(wave["name"]),
                open=index <= rollout.wave,
                sites=sum(c.count for c in mine),
                done=count("done"),
                failed=count("failed"),
                soaking=count("soaking"),
                rolling=count("rolling") - window,
                window=window,
                pending=count("pending"),
            )
        )
    return views


def _totals(census: Sequence[Census]) -> ApplianceTotals:
    found: dict[str, int] = defaultdict(int)
    for group in census:
        if not group.declared:
            kind = "discovered"
        elif not group.registered:
            kind = "unpaired"
        elif not group.fresh:
            kind = "offline"
        elif group.healthy is False:
            kind = "unhealthy"
        else:
            kind = "healthy"
        found[kind] += group.count
    return ApplianceTotals(
        total=sum(n for kind, n in found.items() if kind != "discovered"),
        healthy=found["healthy"],
        unhealthy=found["unhealthy"],
        offline=found["offline"],
        unpaired=found["unpaired"],
        discovered=found["discovered"],
    )


def _event(event: EventRecord) -> EventView:
    return EventView(
        at=_time(event.at),
        level=event.level,
        kind=event.kind,
        message=event.message,
        appliance=event.appliance,
        revision=event.revision,
    )


def _delivery(record: DeliveryRecord) -> DeliveryView:
    return DeliveryView(
        destination=record.destination,
        kind=record.kind,
        event=record.event,
        revision=record.revision,
        state=record.state,
        attempts=record.attempts,
        detail=record.detail,
        updatedAt=_time(record.updated_at),
    )
