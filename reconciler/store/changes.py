"""The change log every replica follows: each served state and each rotated token, in order.

A writer appends rows in its transaction (and, on PostgreSQL, a ``NOTIFY`` that is delivered
when it commits); each replica reads the rows after the last sequence number it saw, so a
notification lost or late costs a re-check, never a missed change. Old rows are pruned.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, func, select, text

from .records import ChangeRecord
from .schema import changes
from .upserts import insert_many

CHANNEL = "edgefleet_changes"
KEEP_SECONDS = 600.0  # a replica that falls further behind re-reads everything it serves


class Changes:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, records: Sequence[ChangeRecord]) -> None:
        if not records:
            return
        rows = [{k: v for k, v in r.__dict__.items() if k != "seq"} for r in records]
        insert_many(self._conn, changes, rows)
        if self._conn.dialect.name == "postgresql":
            self._conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})

    def latest(self) -> int:
        """The newest sequence number (0: none yet)."""
        query = select(func.coalesce(func.max(changes.c.seq), 0))
        return int(self._conn.execute(query).scalar_one())

    def since(self, seq: int, *, limit: int = 20_000) -> list[ChangeRecord]:
        rows = self._conn.execute(
            select(changes).where(changes.c.seq > seq).order_by(changes.c.seq).limit(limit)
        )
        return [ChangeRecord(**dict(row._mapping)) for row in rows]

    def oldest(self) -> int:
        query = select(func.coalesce(func.min(changes.c.seq), 0))
        return int(self._conn.execute(query).scalar_one())

    def prune(self, *, before: float) -> None:
        self._conn.execute(delete(changes).where(changes.c.at < before))
