"""What replicas of the reconciler share beyond rows: who reconciles, and word of changes.

:class:`Leadership` is a lock one process holds at a time: on PostgreSQL a session advisory
lock on a connection of its own (it goes with the process, so a replica killed with -9 frees
it at once); on SQLite a file lock beside the database, which also keeps a second server
off a file that only one process may serve. :class:`ChangeSignal` waits for the ``NOTIFY``
a writer sends with each change (PostgreSQL), or simply for the time given (SQLite, where
the one server makes every change itself).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from .changes import CHANNEL
from .errors import StoreUnavailable, translated

_LEADER_KEY = 0x6566_6C74  # an arbitrary, fixed advisory lock key, apart from the writers'


class Leadership:
    """The right to reconcile, held by one process at a time."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self._file: int | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._file is not None

    def acquire(self) -> bool:
        """Take the lock if it is free; True while this process holds it."""
        if self._engine.dialect.name == "sqlite":
            return self._acquire_file()
        if self._conn is not None:
            return self._still_held()
        with translated():
            conn = self._engine.connect()
            taken = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LEADER_KEY}).scalar()
            )
            conn.commit()
        if taken:
            self._conn = conn
        else:
            conn.close()
        return taken

    def release(self) -> None:
        if self._conn is not None:
            _discard(self._conn)  # the session ends and its advisory lock with it
            self._conn = None
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def _still_held(self) -> bool:
        assert self._conn is not None
        try:
            with translated():
                self._conn.execute(text("SELECT 1")).scalar()
                self._conn.commit()
        except StoreUnavailable:
            self.release()  # the session is gone, and the lock with it
            return False
        return True

    def _acquire_file(self) -> bool:
        if self._file is not None:
            return True
        database = make_url(str(self._engine.url)).database or ""
        path = Path(f"{database}.serve-lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._file = fd
        return True


class ChangeSignal:
    """Wakes when a writer anywhere has logged a change (PostgreSQL ``LISTEN``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True when a notification came in."""
        if self._engine.dialect.name != "postgresql":
            time.sleep(timeout)
            return False
        try:
            raw = self._listening()
            for _ in raw.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except Exception:  # noqa: BLE001 - a lost connection: listen again next time
            self.close()
            time.sleep(min(timeout, 1.0))
            return False

    def close(self) -> None:
        if self._conn is not None:
            _discard(self._conn)
            self._conn = None

    def _listening(self) -> Any:
        if self._conn is None:
            conn = self._engine.connect()
            raw: Any = conn.connection.driver_connection
            raw.autocommit = True
            raw.execute(f"LISTEN {CHANNEL}")
            self._conn = conn
        return self._conn.connection.driver_connection


def _discard(conn: Connection) -> None:
    """Close a connection for good: its session ends instead of going back to the pool."""
    try:
        conn.invalidate()
        conn.close()
    except Exception:  # noqa: BLE001 - the connection may be gone already
        pass
