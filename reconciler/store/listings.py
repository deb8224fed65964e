"""Paged, filtered lists for operators: the sites of a rollout with their appliances' health,
the sites a revision changed, the waves' progress and a revision's timeline.

Like :mod:`.figures`, each answer is one or two statements over indexed rows: the health of
every site is a GROUP BY, filters and the page are ``WHERE``, ``LIMIT`` and ``OFFSET``, so a
page of 50 sites costs about the same in a fleet of ten sites or ten thousand and never
loads a report body.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    Select,
    Subquery,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
)

from .records import EventRecord
from .schema import (
    agents,
    assignments,
    changes,
    controls,
    events,
    reports,
    revisions,
    rollout_sites,
    rollouts,
)

WINDOW_WAIT = "%maintenance window%"  # how gates say a change waits for a window
Health = str  # healthy | unhealthy | unknown (no appliance registered)


@dataclass(frozen=True)
class SiteQuery:
    """Which sites of a rollout to list; empty fields do not filter."""

    wave: int | None = None
    state: str | None = None
    health: Health | None = None
    label: tuple[str, str | None] | None = None  # (key, value); value None: any value
    search: str = ""  # part of a site name, an appliance ID or display name

    @staticmethod
    def label_of(text: str) -> tuple[str, str | None] | None:
        """``KEY=VALUE`` (that value) or ``KEY`` (any value) as a label filter."""
        key, has_value, value = text.strip().partition("=")
        if not key.strip():
            return None
        return key.strip(), value.strip() if has_value else None


@dataclass(frozen=True)
class WaveCount:
    """Changed sites of one wave in one state (``window``: held for a maintenance window)."""

    wave: int
    state: str
    window: bool
    count: int


class Listings:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def sites(
        self, revision: str, query: SiteQuery, *, seen_after: float, offset: int, limit: int
    ) -> tuple[list[str], int]:
        """One page of the rollout's sites that match ``query`` (in wave order, then by
        name) and how many match in all. An appliance is fresh when seen at or after
        ``seen_after``."""
        health = _health(seen_after)
        base = select(rollout_sites.c.site).where(rollout_sites.c.revision == revision)
        if query.health is not None:
            base = base.join(health, health.c.site == rollout_sites.c.site, isouter=True)
            base = base.where(_site_health(health) == query.health)
        base = _filtered(base, query)
        total = self._conn.execute(select(func.count()).select_from(base.subquery())).scalar()
        page = base.order_by(rollout_sites.c.wave, rollout_sites.c.site).offset(offset).limit(limit)
        return [str(site) for site in self._conn.execute(page).scalars()], int(total or 0)

    def waves(self, revision: str) -> list[WaveCount]:
        """The rollout's changed sites counted by wave and state."""
        held = and_(rollout_sites.c.state == "rolling", rollout_sites.c.waiting.like(WINDOW_WAIT))
        window = case((held, 1), else_=0)
        rows = self._conn.execute(
            select(rollout_sites.c.wave, rollout_sites.c.state, window, func.count())
            .where(rollout_sites.c.revision == revision, rollout_sites.c.changed)
            .group_by(rollout_sites.c.wave, rollout_sites.c.state, window)
        )
        return [WaveCount(int(w), str(s), bool(h), int(n)) for w, s, h, n in rows]

    def changed_sites(self, revision: str, *, offset: int, limit: int) -> tuple[list[str], int]:
        """A page of the sites a revision changed, in wave order, and how many in all."""
        where = and_(rollout_sites.c.revision == revision, rollout_sites.c.changed)
        total = self._conn.execute(select(func.count()).where(where)).scalar()
        rows = self._conn.execute(
            select(rollout_sites.c.site)
            .where(where)
            .order_by(rollout_sites.c.wave, rollout_sites.c.site)
            .offset(offset)
            .limit(limit)
        )
        return [str(site) for site in rows.scalars()], int(total or 0)

    def timeline(self, revision: str, *, limit: int = 100) -> list[EventRecord]:
        """The fleet-wide events of a revision (recorded, waves, halts, operators' actions),
        oldest first."""
        rows = self._conn.execute(
            select(events)
            .where(events.c.revision == revision, events.c.site.is_(None))
            .order_by(events.c.id.desc())
            .limit(limit)
        )
        return [_event(row._mapping) for row in reversed(list(rows))]

    def stamp(self) -> tuple[object, ...]:
        """A value that changes whenever something operators see may have: an event, a
        report or registration, a state served, a rollout step, an operator's switch, a
        revision. One statement of indexed maxima (the agents' is a scan of one column)."""
        parts = [
            select(func.max(events.c.id)),
            select(func.max(agents.c.last_seen)),
            select(func.max(changes.c.seq)),
            select(func.max(rollouts.c.updated_at)),
            select(func.max(revisions.c.seq)),
            select(func.max(revisions.c.recorded_at)),
            select(func.max(controls.c.set_at)),
        ]
        row = self._conn.execute(select(*(p.scalar_subquery() for p in parts))).one()
        return tuple(row)

    def latest_event(self, revision: str, kind: str) -> EventRecord | None:
        """The newest event of ``kind`` about a revision (why its rollout halted)."""
        row = self._conn.execute(
            select(events)
            .where(events.c.revision == revision, events.c.kind == kind)
            .order_by(events.c.id.desc())
            .limit(1)
        ).first()
        return _event(row._mapping) if row else None


def _event(m: RowMapping) -> EventRecord:
    return EventRecord(**dict(m))


def _health(seen_after: float) -> Subquery:
    """Per site: its declared appliances, those never registered, registered but not seen
    within the heartbeat timeout (offline), and seen but reporting unhealthy."""
    registered = agents.c.appliance.is_not(None)
    fresh = agents.c.last_seen >= seen_after
    return (
        select(
            assignments.c.site,
            func.count().label("appliances"),
            func.sum(case((~registered, 1), else_=0)).label("unpaired"),
            func.sum(case((and_(registered, ~fresh), 1), else_=0)).label("offline"),
            func.sum(case((and_(fresh, reports.c.healthy == false()), 1), else_=0)).label(
                "unhealthy"
            ),
        )
        .select_from(
            assignments.outerjoin(agents, agents.c.appliance == assignments.c.appliance).outerjoin(
                reports, reports.c.appliance == assignments.c.appliance
            )
        )
        .where(assignments.c.declared)
        .group_by(assignments.c.site)
        .subquery("health")
    )


def _site_health(health: Subquery) -> ColumnElement[str]:
    """The health a site shows: unknown while none of its appliances registered, healthy
    when every registered one is."""
    c = health.c
    registered = func.coalesce(c.appliances, 0) - func.coalesce(c.unpaired, 0)
    return case(
        (registered == 0, literal("unknown")),
        (c.offline + c.unhealthy == 0, literal("healthy")),
        else_=literal("unhealthy"),
    )


def _filtered(base: Select[tuple[str]], query: SiteQuery) -> Select[tuple[str]]:
    if query.wave is not None:
        base = base.where(rollout_sites.c.wave == query.wave)
    if query.state:
        base = base.where(rollout_sites.c.state == query.state)
    if query.label is not None:
        key, value = query.label
        label = rollout_sites.c.labels[key].as_string()
        base = base.where(label.is_not(None) if value is None else label == value)
    if query.search:
        text = query.search.lower()
        matching = select(assignments.c.site).where(
            assignments.c.declared,
            or_(
                assignments.c.appliance.icontains(text, autoescape=True),
                assignments.c.display_name.icontains(text, autoescape=True),
            ),
        )
        base = base.where(
            or_(
                rollout_sites.c.site.icontains(text, autoescape=True),
                rollout_sites.c.site.in_(matching),
            )
        )
    return base
