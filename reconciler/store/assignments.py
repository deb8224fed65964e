"""Per-appliance assignments: the digest each appliance is served now and the latest
release's target for it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from .records import Assignment
from .rows import as_dicts, first_as_dict
from .schema import assignments
from .upserts import upsert_many


class Assignments:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, appliance: str) -> Assignment | None:
        rows = self._conn.execute(select(assignments).where(assignments.c.appliance == appliance))
        row = first_as_dict(rows)
        return _record(row) if row is not None else None

    def get_many(self, appliances: Iterable[str]) -> dict[str, Assignment]:
        wanted = sorted(set(appliances))
        found: dict[str, Assignment] = {}
        for start in range(0, len(wanted), 500):
            rows = self._conn.execute(
                select(assignments).where(assignments.c.appliance.in_(wanted[start : start + 500]))
            )
            found.update((row["appliance"], _record(row)) for row in as_dicts(rows))
        return found

    def all(self) -> list[Assignment]:
        rows = self._conn.execute(select(assignments).order_by(assignments.c.appliance))
        return [_record(row) for row in as_dicts(rows)]

    def for_site(self, site: str) -> list[Assignment]:
        rows = self._conn.execute(
            select(assignments).where(assignments.c.site == site).order_by(assignments.c.appliance)
        )
        return [_record(row) for row in as_dicts(rows)]

    def for_sites(self, sites: Sequence[str]) -> list[Assignment]:
        rows = self._conn.execute(
            select(assignments)
            .where(assignments.c.site.in_(sites))
            .order_by(assignments.c.appliance)
        )
        return [_record(row) for row in as_dicts(rows)]

    def put(self, assignment: Assignment) -> None:
        self.put_many([assignment])

    def put_many(self, records: Sequence[Assignment]) -> None:
        rows = [dict(a.__dict__) for a in records]
        upsert_many(self._conn, assignments, rows, keys=["appliance"])


def _record(m: Mapping[str, Any]) -> Assignment:
    return Assignment(**m)
