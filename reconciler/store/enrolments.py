"""One-time enrolment tokens (``edgefleet appliance enroll``): the hash of each, bound to its
appliance, with its expiry. Taking a token deletes it, so it registers once."""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping, delete, select

from .records import EnrolmentRecord
from .schema import enrolments
from .upserts import upsert


class Enrolments:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def put(self, record: EnrolmentRecord) -> None:
        """Issue a token; an unused earlier one of the same appliance stops working."""
        upsert(self._conn, enrolments, record.__dict__, keys=["appliance"])

    def by_token_hash(self, token_hash: str) -> EnrolmentRecord | None:
        row = self._conn.execute(
            select(enrolments).where(enrolments.c.token_hash == token_hash)
        ).first()
        return _record(row._mapping) if row else None

    def take(self, token_hash: str) -> bool:
        """Use a token up; False when it was already gone (used by a racing request)."""
        result = self._conn.execute(delete(enrolments).where(enrolments.c.token_hash == token_hash))
        return bool(result.rowcount)

    def prune(self, *, before: float) -> None:
        """Forget tokens that expired before ``before``."""
        self._conn.execute(delete(enrolments).where(enrolments.c.expires_at < before))


def _record(m: RowMapping) -> EnrolmentRecord:
    return EnrolmentRecord(**dict(m))
