"""Recorded revisions: each commit the loop handed over, good or failed, in order."""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping, func, select, update

from .records import RevisionRecord
from .schema import revisions


class Revisions:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, record: RevisionRecord) -> RevisionRecord:
        """Insert a revision not recorded before; returns it with its sequence number."""
        result = self._conn.execute(
            revisions.insert().values(
                sha=record.sha,
                outcome=record.outcome,
                errors=list(record.errors),
                recorded_at=record.recorded_at,
                reconcile_seconds=record.reconcile_seconds,
                author=record.author or None,
                subject=record.subject or None,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return RevisionRecord(**{**record.__dict__, "seq": int(key[0])})

    def set_outcome(self, sha: str, outcome: str, *, errors: tuple[str, ...], at: float) -> None:
        """Record a revision again with another outcome (a commit that failed to render
        once, for a reason since fixed outside the repository)."""
        self._conn.execute(
            update(revisions)
            .where(revisions.c.sha == sha)
            .values(outcome=outcome, errors=list(errors), recorded_at=at)
        )

    def get(self, sha: str) -> RevisionRecord | None:
        row = self._conn.execute(select(revisions).where(revisions.c.sha == sha)).first()
        return _record(row._mapping) if row else None

    def latest(self, outcome: str | None = None) -> RevisionRecord | None:
        query = select(revisions).order_by(revisions.c.seq.desc()).limit(1)
        if outcome is not None:
            query = query.where(revisions.c.outcome == outcome)
        row = self._conn.execute(query).first()
        return _record(row._mapping) if row else None

    def recent(self, limit: int = 50) -> list[RevisionRecord]:
        """The newest ``limit`` revisions, newest first."""
        rows = self._conn.execute(select(revisions).order_by(revisions.c.seq.desc()).limit(limit))
        return [_record(row._mapping) for row in rows]

    def counts(self) -> dict[str, int]:
        rows = self._conn.execute(
            select(revisions.c.outcome, func.count()).group_by(revisions.c.outcome)
        )
        return {str(outcome): int(n) for outcome, n in rows}


def _record(m: RowMapping) -> RevisionRecord:
    return RevisionRecord(
        sha=m["sha"],
        outcome=m["outcome"],
        errors=tuple(m["errors"]),
        recorded_at=m["recorded_at"],
        reconcile_seconds=m["reconcile_seconds"],
        seq=m["seq"],
        author=m["author"] or "",
        subject=m["subject"] or "",
    )
