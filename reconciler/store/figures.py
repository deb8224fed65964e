"""Aggregates that ``/metrics`` reads: each a GROUP BY over indexed rows, so a scrape costs
the same at ten appliances and at ten thousand and never loads a report body."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, case, func, literal, select

from .schema import agents, assignments, reports, revisions, rollout_sites


@dataclass(frozen=True)
class Census:
    """How many appliances share these facts."""

    declared: bool  # in the latest good release
    registered: bool  # an agent registered
    fresh: bool  # seen within the heartbeat timeout
    healthy: bool | None  # its latest report says healthy (None: no report)
    in_use: bool | None  # its latest report shows a cluster not deleted
    count: int


class Figures:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def census(self, *, seen_after: float) -> list[Census]:
        """Every appliance, declared or discovered, grouped by what decides its status and
        health."""
        fresh = case((agents.c.last_seen > seen_after, True), else_=False)
        registered = case((agents.c.appliance.is_not(None), True), else_=False)
        declared_rows = self._conn.execute(
            select(registered, fresh, reports.c.healthy, reports.c.in_use, func.count())
            .select_from(
                assignments.outerjoin(agents, agents.c.appliance == assignments.c.appliance)
                .outerjoin(reports, reports.c.appliance == assignments.c.appliance)
            )
            .where(assignments.c.declared)
            .group_by(registered, fresh, reports.c.healthy, reports.c.in_use)
        )
        out = [Census(True, bool(r), bool(f), h, u, int(n)) for r, f, h, u, n in declared_rows]
        declared = select(assignments.c.appliance).where(assignments.c.declared)
        discovered_rows = self._conn.execute(
            select(fresh, reports.c.healthy, reports.c.in_use, func.count())
            .select_from(agents.outerjoin(reports, reports.c.appliance == agents.c.appliance))
            .where(agents.c.appliance.not_in(declared))
            .group_by(fresh, reports.c.healthy, reports.c.in_use)
        )
        out += [Census(False, True, bool(f), h, u, int(n)) for f, h, u, n in discovered_rows]
        return out

    def site_states(self, revision: str) -> dict[tuple[bool, str], int]:
        """The rollout's sites by (changed, state)."""
        rows = self._conn.execute(
            select(rollout_sites.c.changed, rollout_sites.c.state, func.count())
            .where(rollout_sites.c.revision == revision)
            .group_by(rollout_sites.c.changed, rollout_sites.c.state)
        )
        return {(bool(c), str(s)): int(n) for c, s, n in rows}

    def reconcile_histogram(self, buckets: tuple[float, ...]) -> tuple[list[int], int, float]:
        """Cumulative counts of reconcile durations at or under each bucket, the count and
        the sum of all of them."""
        seconds = revisions.c.reconcile_seconds
        columns = [
            func.coalesce(func.sum(case((seconds <= le, 1), else_=0)), 0) for le in buckets
        ]
        row = self._conn.execute(
            select(
                *columns,
                func.count(seconds),
                func.coalesce(func.sum(seconds), literal(0.0)),
            ).where(and_(seconds.is_not(None)))
        ).one()
        *counts, total, summed = row
        return [int(c) for c in counts], int(total), float(summed)
