"""Per-appliance assignments: the digest each appliance is served now and the latest
release's target for it."""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping, select

from .records import Assignment
from .schema import assignments
from .upserts import upsert


class Assignments:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, appliance: str) -> Assignment | None:
        row = self._conn.execute(
            select(assignments).where(assignments.c.appliance == appliance)
        ).first()
        return _record(row._mapping) if row else None

    def all(self) -> list[Assignment]:
        rows = self._conn.execute(select(assignments).order_by(assignments.c.appliance))
        return [_record(row._mapping) for row in rows]

    def for_site(self, site: str) -> list[Assignment]:
        rows = self._conn.execute(
            select(assignments).where(assignments.c.site == site).order_by(assignments.c.appliance)
        )
        return [_record(row._mapping) for row in rows]

    def put(self, assignment: Assignment) -> None:
        upsert(self._conn, assignments, dict(assignment.__dict__), keys=["appliance"])


def _record(m: RowMapping) -> Assignment:
    return Assignment(**dict(m))
