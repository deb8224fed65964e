"""Opening a database from a URL: SQLite (the default, one file) or PostgreSQL.

SQLite runs in WAL mode with a busy timeout, so the API's readers never wait for the
rollout's writer, and write transactions start with ``BEGIN IMMEDIATE``: a writer waits for
the lock up front instead of failing half-way when another writer committed first. The log
is copied back into the database file in the background (:mod:`.checkpoints`).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from .checkpoints import BACKSTOP_PAGES
from .errors import StoreError

BUSY_TIMEOUT_MS = 15_000
# the API's store calls run on anyio's worker threads (40 by default): one pooled connection
# each, so none is opened (with its PRAGMAs) and dropped per request under load
POOL_SIZE = 40
WRITE_OPTION = "edgefleet_write"


def _json_text(value: Any) -> str:
    """A JSON column's text, by orjson (a release writes tens of thousands); what it refuses
    (an integer past 64 bits, a key that is not plain) the standard library writes. Read back
    by the standard library, which keeps such an integer whole (orjson makes it a float)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


JSON_COLUMNS: dict[str, Any] = {"json_serializer": _json_text}


def open_engine(url: str) -> Engine:
    """An engine for ``sqlite:///PATH`` or ``postgresql+psycopg://...``."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:  # its message repeats the URL, password and all
        raise StoreError(
            "not a database URL: use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        ) from e
    if parsed.get_backend_name() == "sqlite":
        return _sqlite(url)
    if parsed.get_backend_name() == "postgresql":
        try:
            return create_engine(
                url, pool_pre_ping=True, pool_size=10, max_overflow=20, **JSON_COLUMNS
            )
        except ImportError as e:
            raise StoreError(f"no PostgreSQL driver: pip install 'psycopg[binary]' ({e})") from e
    raise StoreError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
    )


def _sqlite(url: str) -> Engine:
    if make_url(url).database in (None, "", ":memory:"):
        # every pooled connection would get a database of its own
        raise StoreError("an in-memory SQLite database cannot be shared: use sqlite:///PATH")
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
        pool_size=POOL_SIZE,
        max_overflow=10,
        **JSON_COLUMNS,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # SQLAlchemy, not the driver, decides where transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")  # see .checkpoints
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options: dict[str, Any] = dict(connection.get_execution_options())
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION) else "BEGIN")

    return engine
