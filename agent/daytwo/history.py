"""The record of day-2 runs (every patch, scan, backup and restore) and of the last boot seen,
in ``daytwo.sqlite3`` in the agent's data folder::

    HistoryError (agent.daytwo.DayTwoError)   the database cannot be opened, read or written
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.daytwo import DayTwoError
from agent.daytwo.records import (
    BackupResult,
    DayTwoStatus,
    NodePatch,
    PatchResult,
    RestoreResult,
    RunState,
    ScanResult,
)

DB_NAME = "daytwo.sqlite3"
KEPT_PER_CLUSTER = 500  # rows of each kind; older ones are dropped

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,        -- patch | scan | backup | restore
    cluster TEXT NOT NULL,
    subject TEXT NOT NULL,     -- node, scan type, backup id
    state TEXT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL         -- the outcome's JSON
);
CREATE INDEX IF NOT EXISTS runs_by_cluster ON runs (cluster, kind, subject, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class HistoryError(DayTwoError): ...


class History:
    def __init__(self, *, data_dir: Path) -> None:
        self.path = data_dir / DB_NAME
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._db() as db:
            db.executescript(SCHEMA)

    # -- writing ---------------------------------------------------------------------------

    def record_patch(self, result: PatchResult) -> None:
        for node in result.nodes:
            self._add("patch", node.cluster, node.node, node.state, node.at, node.to_json())

    def record_scan(self, result: ScanResult) -> None:
        self._add(
            "scan", result.cluster, result.scan, result.state, result.started_at, result.to_json()
        )

    def record_backup(self, result: BackupResult) -> None:
        self._add(
            "backup", result.cluster, result.id, result.state, result.started_at, result.to_json()
        )

    def record_restore(self, result: RestoreResult) -> None:
        self._add(
            "restore",
            result.cluster,
            result.backup,
            RunState.DONE,
            result.started_at,
            result.to_json(),
        )

    # -- reading ---------------------------------------------------------------------------

    def status(self, cluster: str) -> DayTwoStatus:
        patches = tuple(NodePatch.from_json(b) for b in self._last_per_subject("patch", cluster))
        scans = tuple(ScanResult.from_json(b) for b in self._last_per_subject("scan", cluster))
        backups = self._latest("backup", cluster, state=None)
        good = self._latest("backup", cluster, state=RunState.DONE)
        restore = self._latest("restore", cluster, state=None)
        return DayTwoStatus(
            cluster=cluster,
            patches=patches,
            scans=scans,
            last_backup=None if backups is None else BackupResult.from_json(backups),
            last_good_backup=None if good is None else BackupResult.from_json(good),
            last_restore=None if restore is None else RestoreResult.from_json(restore),
        )

    def node_version(self, cluster: str, node: str) -> str | None:
        """The version a node last reported after a successful patch."""
        with self._db() as db:
            row = db.execute(
                "SELECT body FROM runs WHERE kind = 'patch' AND cluster = ? AND subject = ?"
                " AND state = 'done' ORDER BY id DESC LIMIT 1",
                (cluster, node),
            ).fetchone()
        return None if row is None else NodePatch.from_json(json.loads(row[0])).version

    def patched_since(self, cluster: str, node: str, since: datetime) -> bool:
        """Whether the node was patched successfully at or after ``since``."""
        with self._db() as db:
            rows = db.execute(
                "SELECT at FROM runs WHERE kind = 'patch' AND cluster = ? AND subject = ?"
                " AND state = 'done' ORDER BY id DESC LIMIT 1",
                (cluster, node),
            ).fetchall()
        return any(datetime.fromisoformat(row[0]) >= since for row in rows)

    # -- boots -----------------------------------------------------------------------------

    def new_boot(self, boot_id: str) -> bool:
        """Whether ``boot_id`` differs from the one seen last; it is remembered either way."""
        with self._db() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'boot'").fetchone()
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('boot', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (boot_id,),
            )
        return row is None or row[0] != boot_id

    # -- internals -------------------------------------------------------------------------

    def _add(
        self, kind: str, cluster: str, subject: str, state: str, at: datetime, body: dict[str, Any]
    ) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO runs (kind, cluster, subject, state, at, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (kind, cluster, subject, str(state), at.isoformat(), json.dumps(body)),
            )
            db.execute(
                "DELETE FROM runs WHERE kind = ? AND cluster = ? AND id NOT IN"
                " (SELECT id FROM runs WHERE kind = ? AND cluster = ? ORDER BY id DESC LIMIT ?)",
                (kind, cluster, kind, cluster, KEPT_PER_CLUSTER),
            )

    def _last_per_subject(self, kind: str, cluster: str) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT body FROM runs WHERE id IN (SELECT MAX(id) FROM runs"
                " WHERE kind = ? AND cluster = ? GROUP BY subject) ORDER BY subject",
                (kind, cluster),
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def _latest(self, kind: str, cluster: str, *, state: RunState | None) -> dict[str, Any] | None:
        query = "SELECT body FROM runs WHERE kind = ? AND cluster = ?"
        args: tuple[str, ...] = (kind, cluster)
        if state is not None:
            query += " AND state = ?"
            args += (str(state),)
        with self._db() as db:
            row = db.execute(query + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=30)
        except sqlite3.Error as e:
            raise HistoryError(f"{self.path}: {e}") from e
        try:
            with db:
                db.execute("PRAGMA journal_mode=WAL")
                yield db
        except sqlite3.Error as e:
            raise HistoryError(f"{self.path}: {e}") from e
        finally:
            db.close()
