"""Events for operators: rollout steps, failed revisions, what agents reported."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from sqlalchemy import Connection, RowMapping, delete, func, select

from .records import EventRecord
from .schema import events
from .upserts import upsert_many

KEEP = 20_000  # events kept; older ones are pruned


class Events:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.added: list[EventRecord] = []  # by this transaction, for what follows its commit

    def add(self, records: Iterable[EventRecord]) -> None:
        """Append events in order; one an agent already sent (same appliance and key) is
        skipped."""
        records = list(records)
        self.added += records
        for keyed, run in groupby(records, key=lambda r: r.key is not None):
            rows = [{k: v for k, v in r.__dict__.items() if k != "id"} for r in run]
            if keyed:
                upsert_many(self._conn, events, rows, keys=["appliance", "key"], update=[])
            else:
                self._conn.execute(events.insert(), rows)

    def recent(
        self,
        *,
        site: str | None = None,
        appliance: str | None = None,
        fleet: bool = False,
        limit: int = 50,
    ) -> list[EventRecord]:
        """The newest events first; ``fleet``: only those of no site (the rollout's own,
        operators' actions, failed revisions)."""
        query = select(events).order_by(events.c.id.desc()).limit(limit)
        if fleet:
            query = query.where(events.c.site.is_(None))
        if site is not None:
            query = query.where(events.c.site == site)
        if appliance is not None:
            query = query.where(events.c.appliance == appliance)
        return [_record(row._mapping) for row in self._conn.execute(query)]

    def prune(self, *, keep: int = KEEP) -> int:
        """Delete all but the newest ``keep`` events; returns how many were deleted."""
        newest = self._conn.execute(select(func.max(events.c.id))).scalar()
        if newest is None or newest <= keep:
            return 0
        result = self._conn.execute(delete(events).where(events.c.id <= newest - keep))
        return int(result.rowcount)


def _record(m: RowMapping) -> EventRecord:
    return EventRecord(**dict(m))
