"""The agent's memory on disk: what it created, the digests it applied, the step journal and
the last good DesiredState, in a SQLite database only one agent at a time may hold::

    InventoryError (agent.errors.AgentError)
    ├── InventoryBusy            another agent holds the data folder
    └── InventoryUnreadable      the database or the saved state cannot be read
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Literal, Self, get_args

from pydantic import ValidationError

from agent.apply import journal
from agent.apply.journal import JournalEntry, StepStatus
from agent.contract import DesiredState
from agent.errors import AgentError

DB_NAME = "inventory.sqlite3"
STATE_NAME = "last-good-state.json"
LOCK_NAME = "agent.lock"
JOIN_SECRET_NAME = "join-secret"

ResourceKind = Literal["network", "container", "volume", "manifest"]
RESOURCE_KINDS: tuple[ResourceKind, ...] = get_args(ResourceKind)

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    parent TEXT NOT NULL,
    name TEXT NOT NULL,
    cluster TEXT NOT NULL,
    pool TEXT NOT NULL,
    node TEXT NOT NULL,
    PRIMARY KEY (kind, parent, name)
);
CREATE TABLE IF NOT EXISTS clusters (
    name TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


JOIN_SECRET_BYTES = 32


class InventoryError(AgentError): ...


class InventoryBusy(InventoryError): ...


class InventoryUnreadable(InventoryError): ...


class ClusterStage(StrEnum):
    """Where a cluster's lifecycle stands between passes (the result's phase is per pass)."""

    PROVISIONING = "provisioning"  # never yet ran: removing it now aborts it
    RUNNING = "running"
    DELETING = "deleting"
    ABORTING = "aborting"


@dataclass(frozen=True)
class Record:
    """Something the agent created. ``parent`` is a manifest's container, else empty."""

    kind: ResourceKind
    name: str
    cluster: str
    parent: str = ""
    pool: str = ""
    node: str = ""

    def as_json(self) -> dict[str, str]:
        return {key: str(value) for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, value: dict[str, str]) -> Record:
        kind = value["kind"]
        if kind not in RESOURCE_KINDS:
            raise InventoryUnreadable(f"unknown resource kind in journal: {kind!r}")
        return cls(
            kind=kind,
            name=value["name"],
            cluster=value["cluster"],
            parent=value.get("parent", ""),
            pool=value.get("pool", ""),
            node=value.get("node", ""),
        )


@dataclass(frozen=True)
class Applied:
    digest: str
    revision: str
    at: datetime


class Inventory:
    def __init__(self, *, data_dir: Path, db: sqlite3.Connection, lock: IO[str]) -> None:
        self.data_dir = data_dir
        self._db = db
        self._lock = lock

    @classmethod
    def open(cls, data_dir: Path) -> Inventory:
        private_folder(data_dir)
        # the database (and the journal files SQLite makes beside it with its mode) 0600
        os.close(os.open(data_dir / DB_NAME, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(data_dir / DB_NAME, 0o600)
        lock = open(data_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            lock.close()
            raise InventoryBusy(f"another agent is using {data_dir}") from e
        try:
            db = sqlite3.connect(data_dir / DB_NAME)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA + journal.SCHEMA)
        except sqlite3.DatabaseError as e:
            lock.close()
            raise InventoryUnreadable(f"{data_dir / DB_NAME}: {e}") from e
        return cls(data_dir=data_dir, db=db, lock=lock)

    def close(self) -> None:
        self._db.close()
        self._lock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resources -------------------------------------------------------------------------

    def records(self, *, cluster: str | None = None) -> tuple[Record, ...]:
        query = "SELECT kind, name, cluster, parent, pool, node FROM resources"
        rows = (
            self._db.execute(query + " ORDER BY rowid").fetchall()
            if cluster is None
            else self._db.execute(query + " WHERE cluster = ? ORDER BY rowid", (cluster,))
        )
        return tuple(Record(**dict(row)) for row in rows)

    def record(self, *records: Record) -> None:
        with self._db:
            self._upsert(records)

    def forget(self, *records: Record) -> None:
        with self._db:
            self._delete(records)

    # -- clusters --------------------------------------------------------------------------

    def cluster_stages(self) -> dict[str, ClusterStage]:
        rows = self._db.execute("SELECT name, stage FROM clusters").fetchall()
        return {row["name"]: ClusterStage(row["stage"]) for row in rows}

    def set_cluster_stage(self, cluster: str, stage: ClusterStage, *, at: datetime) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO clusters (name, stage, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET stage = excluded.stage,"
                " updated_at = excluded.updated_at",
                (cluster, stage, at.isoformat()),
            )

    def drop_cluster(self, cluster: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM clusters WHERE name = ?", (cluster,))
            self._db.execute("DELETE FROM resources WHERE cluster = ?", (cluster,))

    # -- digests ---------------------------------------------------------------------------

    def appliance(self) -> str | None:
        return self._meta("appliance")

    def mark_attempted(self, state: DesiredState, *, at: datetime) -> None:
        self._set_meta("appliance", state.appliance)
        self._set_meta("attempted", _applied_json(state, at))

    def mark_applied(self, state: DesiredState, *, at: datetime) -> None:
        self._set_meta("applied", _applied_json(state, at))

    def last_attempted(self) -> Applied | None:
        return _applied(self._meta("attempted"))

    def last_applied(self) -> Applied | None:
        return _applied(self._meta("applied"))

    # -- journal ---------------------------------------------------------------------------

    def begin_step(
        self,
        *,
        digest: str,
        cluster: str,
        action: str,
        title: str,
        resources: tuple[Record, ...],
        at: datetime,
    ) -> int:
        """Journal a step's intent, committed before the step touches anything."""
        with self._db:
            return journal.write_intent(
                self._db,
                digest=digest,
                cluster=cluster,
                action=action,
                title=title,
                resources=[r.as_json() for r in resources],
                at=at,
            )

    def settle_step(
        self,
        entry: int,
        status: StepStatus,
        *,
        at: datetime,
        record: tuple[Record, ...] = (),
        forget: tuple[Record, ...] = (),
        error: str | None = None,
    ) -> None:
        """Settle a step and update the inventory in one transaction."""
        with self._db:
            self._upsert(record)
            self._delete(forget)
            journal.settle(self._db, entry, status, at=at, error=error)

    def open_steps(self) -> list[JournalEntry]:
        return journal.select(self._db, status=StepStatus.INTENT)

    def steps(self) -> list[JournalEntry]:
        return journal.select(self._db)

    def trim_journal(self, *, keep: int = 5000) -> None:
        with self._db:
            journal.trim(self._db, keep=keep)

    # -- the last good state ---------------------------------------------------------------

    def keep_state(self, state: DesiredState) -> None:
        """Write the state atomically: a crash leaves the old file or the new, never half."""
        target = self.data_dir / STATE_NAME
        partial = target.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(state.canonical_json())
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
        folder = os.open(self.data_dir, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def join_secret(self) -> bytes:
        """This agent's secret for cluster join tokens (see :func:`join_secret`)."""
        return join_secret(self.data_dir)

    def last_good_state(self) -> DesiredState | None:
        path = self.data_dir / STATE_NAME
        if not path.exists():
            return None
        try:
            return DesiredState.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as e:
            raise InventoryUnreadable(f"{path}: cannot be read back: {e}") from e

    # -- internals -------------------------------------------------------------------------

    def _upsert(self, records: tuple[Record, ...]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO resources (kind, parent, name, cluster, pool, node)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(r.kind, r.parent, r.name, r.cluster, r.pool, r.node) for r in records],
        )

    def _delete(self, records: tuple[Record, ...]) -> None:
        self._db.executemany(
            "DELETE FROM resources WHERE kind = ? AND parent = ? AND name = ?",
            [(r.kind, r.parent, r.name) for r in records],
        )

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def _set_meta(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


def _applied_json(state: DesiredState, at: datetime) -> str:
    return json.dumps({"digest": state.digest, "revision": state.revision, "at": at.isoformat()})


def _applied(value: str | None) -> Applied | None:
    if value is None:
        return None
    fields = json.loads(value)
    return Applied(
        digest=fields["digest"],
        revision=fields["revision"],
        at=datetime.fromisoformat(fields["at"]),
    )


def private_folder(folder: Path) -> None:
    """``folder`` made if missing, and 0700 either way: the agent's data is its own."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)


def join_secret(data_dir: Path) -> bytes:
    """The agent's secret for cluster join tokens: made on first use, written atomically
    (a temporary file, fsync, rename: a crash leaves none or all of it) mode 0600, and read
    back only if it is exactly 32 bytes. An empty or short secret would make a join token
    anyone can compute, so it is refused, never replaced (clusters joined with it)."""
    path = data_dir / JOIN_SECRET_NAME
    if not path.exists():
        partial = data_dir / f".{JOIN_SECRET_NAME}.partial-{secrets.token_hex(4)}"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(JOIN_SECRET_BYTES))
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        folder = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    try:
        secret = path.read_bytes()
    except OSError as e:
        raise InventoryUnreadable(f"{path}: {e.strerror}") from e
    if len(secret) != JOIN_SECRET_BYTES:
        raise InventoryUnreadable(
            f"{path}: a join secret is exactly {JOIN_SECRET_BYTES} bytes, this one is "
            f"{len(secret)}; the clusters' join tokens depend on it, so it is not replaced"
        )
    return secret
