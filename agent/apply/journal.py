"""The step journal: each apply step written down before it runs and settled after, in the
inventory's database; an entry still an ``intent`` at start-up was cut short."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    digest TEXT NOT NULL,
    cluster TEXT NOT NULL,
    action TEXT NOT NULL,
    title TEXT NOT NULL,
    resources TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS journal_status ON journal (status);
"""


class StepStatus(StrEnum):
    INTENT = "intent"
    DONE = "done"
    FAILED = "failed"
    UNDONE = "undone"  # recovery removed what the interrupted step had half made
    RESUMED = "resumed"  # recovery took stock; the next plan finishes the step


@dataclass(frozen=True)
class JournalEntry:
    id: int
    digest: str
    cluster: str
    action: str
    title: str
    resources: tuple[dict[str, str], ...]
    status: StepStatus
    error: str | None
    started_at: datetime
    finished_at: datetime | None


def write_intent(
    db: sqlite3.Connection,
    *,
    digest: str,
    cluster: str,
    action: str,
    title: str,
    resources: list[dict[str, str]],
    at: datetime,
) -> int:
    cursor = db.execute(
        "INSERT INTO journal (digest, cluster, action, title, resources, status, started_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (digest, cluster, action, title, json.dumps(resources), StepStatus.INTENT, at.isoformat()),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def settle(
    db: sqlite3.Connection, entry: int, status: StepStatus, *, at: datetime, error: str | None
) -> None:
    db.execute(
        "UPDATE journal SET status = ?, error = ?, finished_at = ? WHERE id = ?",
        (status, error, at.isoformat(), entry),
    )


def select(db: sqlite3.Connection, *, status: StepStatus | None = None) -> list[JournalEntry]:
    if status is None:
        rows = db.execute("SELECT * FROM journal ORDER BY id").fetchall()
    else:
        rows = db.execute(
            "SELECT * FROM journal WHERE status = ? ORDER BY id", (status,)
        ).fetchall()
    return [_entry(row) for row in rows]


def trim(db: sqlite3.Connection, *, keep: int) -> None:
    """Forget settled entries beyond the newest ``keep``; open intents are never trimmed."""
    db.execute(
        "DELETE FROM journal WHERE status != ? AND id <= (SELECT MAX(id) FROM journal) - ?",
        (StepStatus.INTENT, keep),
    )


def _entry(row: Any) -> JournalEntry:
    return JournalEntry(
        id=row["id"],
        digest=row["digest"],
        cluster=row["cluster"],
        action=row["action"],
        title=row["title"],
        resources=tuple(json.loads(row["resources"])),
        status=StepStatus(row["status"]),
        error=row["error"],
        started_at=datetime.fromisoformat(row["started_at"]),
        finished_at=None
        if row["finished_at"] is None
        else datetime.fromisoformat(row["finished_at"]),
    )
