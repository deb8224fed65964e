"""``INSERT ... ON CONFLICT`` for both dialects: SQLite and PostgreSQL spell it the same way
in SQLAlchemy, but through their own ``insert`` constructs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
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
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).values(dict(values))
    columns = [c for c in values if c not in keys] if update is None else list(update)
    if columns:
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=list(keys),
                set_={c: statement.excluded[c] for c in columns},
            )
        )
    else:
        conn.execute(statement.on_conflict_do_nothing(index_elements=list(keys)))
