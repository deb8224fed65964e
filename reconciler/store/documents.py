"""Desired-state documents, stored once per digest.

The stored text is the canonical JSON of everything the digest covers, so the same content
reached by any number of revisions and appliances is one row.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, select

from .schema import documents
from .upserts import upsert_many


class Documents:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def put(self, contents: Mapping[str, str], *, at: float) -> None:
        """Store each ``digest -> canonical JSON`` not stored yet."""
        known = self.known(contents)
        rows = [
            {"digest": digest, "content": content, "stored_at": at}
            for digest, content in contents.items()
            if digest not in known
        ]
        upsert_many(self._conn, documents, rows, keys=["digest"], update=[])

    def get(self, digest: str) -> str | None:
        row = self._conn.execute(
            select(documents.c.content).where(documents.c.digest == digest)
        ).first()
        return str(row[0]) if row else None

    def get_many(self, digests: set[str]) -> dict[str, str]:
        wanted = sorted(digests)
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            rows = self._conn.execute(
                select(documents.c.digest, documents.c.content).where(
                    documents.c.digest.in_(wanted[start : start + 500])
                )
            )
            found.update((str(d), str(c)) for d, c in rows)
        return found

    def known(self, digests: Mapping[str, str] | set[str]) -> set[str]:
        wanted = list(digests)
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self._conn.execute(
                select(documents.c.digest).where(documents.c.digest.in_(chunk))
            )
            found.update(str(d) for (d,) in rows)
        return found
