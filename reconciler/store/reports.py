"""The latest status report of each appliance, the digests each ran healthy, and its healthy
streak (the digest it runs healthy now, since when, and whether that run is proven)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, RowMapping, select, tuple_

from .records import ReportRecord, Streak
from .schema import healthy_digests, reports, streaks
from .upserts import upsert_many


class Reports:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def put(self, record: ReportRecord) -> None:
        """Keep ``record`` as the appliance's latest report."""
        self.put_many([record])

    def put_many(self, records: Iterable[ReportRecord]) -> None:
        """Keep each record as its appliance's latest report (of two for one appliance, the
        later)."""
        upsert_many(self._conn, reports, [dict(r.__dict__) for r in records], keys=["appliance"])

    def get(self, appliance: str) -> ReportRecord | None:
        row = self._conn.execute(select(reports).where(reports.c.appliance == appliance)).first()
        return _record(row._mapping) if row else None

    def all(self) -> list[ReportRecord]:
        rows = self._conn.execute(select(reports).order_by(reports.c.appliance))
        return [_record(row._mapping) for row in rows]

    def for_appliances(self, appliances: Iterable[str]) -> dict[str, ReportRecord]:
        wanted = sorted(set(appliances))
        found: dict[str, ReportRecord] = {}
        for start in range(0, len(wanted), 500):
            rows = self._conn.execute(
                select(reports).where(reports.c.appliance.in_(wanted[start : start + 500]))
            )
            found.update((r.appliance, r) for r in (_record(row._mapping) for row in rows))
        return found

    # -- digests an appliance ran healthy (a change back to one of them is a revert) ------
    def mark_healthy(self, appliance: str, digest: str, *, at: float) -> None:
        self.mark_healthy_many([(appliance, digest)], at=at)

    def mark_healthy_many(self, pairs: Iterable[tuple[str, str]], *, at: float) -> None:
        """Each ``(appliance, digest)`` ran healthy (first at ``at``, unless known already)."""
        upsert_many(
            self._conn,
            healthy_digests,
            [{"appliance": a, "digest": d, "first_healthy_at": at} for a, d in pairs],
            keys=["appliance", "digest"],
            update=[],
        )

    def healthy_pairs(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which ``(appliance, digest)`` pairs ran healthy at some point."""
        wanted = sorted(set(pairs))
        found: set[tuple[str, str]] = set()
        key = tuple_(healthy_digests.c.appliance, healthy_digests.c.digest)
        for start in range(0, len(wanted), 200):
            rows = self._conn.execute(
                select(healthy_digests.c.appliance, healthy_digests.c.digest).where(
                    key.in_(wanted[start : start + 200])
                )
            )
            found.update((str(a), str(d)) for a, d in rows)
        return found

    # -- healthy streaks (what the soak gate reads) ---------------------------------------
    def streaks(self, appliances: Iterable[str]) -> dict[str, Streak]:
        wanted = sorted(set(appliances))
        found: dict[str, Streak] = {}
        for start in range(0, len(wanted), 500):
            rows = self._conn.execute(
                select(streaks).where(streaks.c.appliance.in_(wanted[start : start + 500]))
            )
            found.update((row.appliance, Streak(**dict(row._mapping))) for row in rows)
        return found

    def put_streaks(self, records: Iterable[Streak]) -> None:
        rows = [dict(r.__dict__) for r in records]
        upsert_many(self._conn, streaks, rows, keys=["appliance"])


def _record(m: RowMapping) -> ReportRecord:
    return ReportRecord(
        appliance=m["appliance"],
        received_at=m["received_at"],
        applied_digest=m["applied_digest"],
        healthy=bool(m["healthy"]),
        body=dict(m["body"]),
        in_use=bool(m["in_use"]),
    )
