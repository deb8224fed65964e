"""Writing many rows at once, for both dialects: ``INSERT ... ON CONFLICT`` (SQLite and
PostgreSQL spell it the same way in SQLAlchemy, but through their own ``insert``
constructs), plain inserts and updates by key. Each sends one statement for many rows (an
executemany), as a release writes thousands at once. Each statement is built once per table
and columns: building one costs more than running it (an agent's report makes several).

Many rows go to the driver as the statement's SQL, compiled once per dialect and columns,
with each row's values passed through the columns' own bind processors (JSON, booleans):
what SQLAlchemy does per row, without building its parameters row by row, which cost as much
as the database's own work for the ten thousand rows of a release."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import UpdateBase


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
        execute_many(conn, statement, rows)


def insert_many(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows with the same columns, in one statement."""
    if rows:
        execute_many(conn, _insert(table), rows)


@lru_cache(maxsize=256)
def _upsert(
    dialect: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]
) -> UpdateBase:
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
    execute_many(
        conn, statement, [{**row, **{f"key_{key}": row[key] for key in keys}} for row in rows]
    )


@lru_cache(maxsize=256)
def _update(table: Table, keys: tuple[str, ...]) -> UpdateBase:
    return table.update().where(*(table.c[key] == bindparam(f"key_{key}") for key in keys))


@lru_cache(maxsize=64)
def _insert(table: Table) -> UpdateBase:
    return table.insert()


def execute_many(
    conn: Connection, statement: UpdateBase, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Run ``statement`` (built once, see above) for each of ``rows`` (the same keys in each)."""
    prepared = _prepared(conn.dialect, statement, tuple(rows[0]))
    if prepared is None:  # a column left to its default: SQLAlchemy fills it in
        conn.execute(statement, [dict(row) for row in rows])
        return
    conn.exec_driver_sql(prepared.sql, prepared.parameters(rows))


@dataclass(frozen=True)
class _Prepared:
    """A statement's SQL for the driver, and how a row becomes its parameters."""

    sql: str
    positional: bool  # SQLite's "?" (in order); else psycopg's "%(name)s" (by name)
    names: tuple[str, ...]  # the statement's parameters, in order
    processors: tuple[Callable[[Any], Any] | None, ...]  # each one's column's, if it has one

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        pairs = list(zip(self.names, self.processors, strict=True))
        if not self.positional:
            return [{n: row[n] if p is None else p(row[n]) for n, p in pairs} for row in rows]
        if not any(self.processors):
            return [tuple([row[name] for name in self.names]) for row in rows]
        return [tuple([row[n] if p is None else p(row[n]) for n, p in pairs]) for row in rows]


@lru_cache(maxsize=256)
def _prepared(dialect: Dialect, statement: UpdateBase, keys: tuple[str, ...]) -> _Prepared | None:
    """The SQL of ``statement`` for rows with ``keys``, or None when it needs a value the
    rows do not give (a column's default)."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
    if not set(names) <= set(keys):
        return None
    processors = tuple(
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    return _Prepared(compiled.string, compiled.positional, names, processors)
