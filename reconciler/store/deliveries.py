"""Deliveries of results reported out (commit statuses, webhooks): written by the reporting
worker after each attempt, read by the fleet view."""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select, update

from .records import DeliveryRecord
from .schema import deliveries

KEEP = 2_000  # deliveries kept; older ones are pruned


class Deliveries:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, record: DeliveryRecord) -> int:
        row = {k: v for k, v in record.__dict__.items() if k != "id"}
        key = self._conn.execute(deliveries.insert(), row).inserted_primary_key
        assert key is not None
        return int(key[0])

    def update(self, delivery: int, *, state: str, attempts: int, detail: str, at: float) -> None:
        self._conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery)
            .values(state=state, attempts=attempts, detail=detail, updated_at=at)
        )

    def recent(self, limit: int = 20) -> list[DeliveryRecord]:
        """The newest first."""
        query = select(deliveries).order_by(deliveries.c.id.desc()).limit(limit)
        return [DeliveryRecord(**dict(row._mapping)) for row in self._conn.execute(query)]

    def counts(self) -> dict[str, int]:
        """How many deliveries are in each state."""
        query = select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
        return {str(state): int(count) for state, count in self._conn.execute(query)}

    def prune(self, *, keep: int = KEEP) -> int:
        newest = self._conn.execute(select(func.max(deliveries.c.id))).scalar()
        if newest is None or newest <= keep:
            return 0
        result = self._conn.execute(delete(deliveries).where(deliveries.c.id <= newest - keep))
        return int(result.rowcount)
