"""``INSERT ... ON CONFLICT`` for both dialects: SQLite and PostgreSQL spell it the same way
in SQLAlchemy, but through their own ``insert`` constructs. :func:`upsert_many` sends one
statement for many rows (an executemany), as a release writes thousands at once. Each
statement is built once per table and columns: building one costs more than running it
(an agent's report makes several)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Executable, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite


def upsert(
    conn: Connection,
    table: Table,
    values: Mapping[str, Any],
    *,
    keys: Sequence[str],
    update: Sequence[str] | None = None,
) -> None:
    """Insert ``values``; on a conflict over ``keys`` update ``update`` (default: every other
    column given), or do nothing when ``update`` is empty."""
    upsert_many(conn, table, [values], keys=keys, update=update)


def upsert_many(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str] | None = None,
) -> None:
    """:func:`upsert` of many rows with the same columns, in one statement."""
    if not rows:
        return
    columns = [c for c in rows[0] if c not in keys] if update is None else list(update)
    statement = _upsert(conn.dialect.name, table, tuple(keys), tuple(columns))
    if len(rows) == 1:
        conn.execute(statement, dict(rows[0]))
    else:
        conn.execute(statement, [dict(row) for row in rows])


@lru_cache(maxsize=256)
def _upsert(
    dialect: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]
) -> Executable:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    if not columns:
        return statement.on_conflict_do_nothing(index_elements=list(keys))
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={c: statement.excluded[c] for c in columns}
    )


def update_many(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *, keys: Sequence[str]
) -> None:
    """Update existing rows, each found by its ``keys`` columns, in one statement."""
    if not rows:
        return
    statement = _update(table, tuple(keys))
    conn.execute(
        statement,
        [{**row, **{f"key_{key}": row[key] for key in keys}} for row in rows],
    )


@lru_cache(maxsize=256)
def _update(table: Table, keys: tuple[str, ...]) -> Executable:
    return table.update().where(*(table.c[key] == bindparam(f"key_{key}") for key in keys))
