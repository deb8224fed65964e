"""Schema migrations (Alembic): how a database gets from the schema an older edgefleet left
to the one :mod:`reconciler.store.schema` describes. Called by :class:`..Store` on open and
by ``edgefleet db upgrade``.

``versions/r0001_baseline.py``            the schema of databases deployed before migrations
``versions/r0002_proofs_and_controls.py`` streaks, controls, accepted failures, reverts
``versions/r0003_replicas_and_deliveries.py`` the change log, reports in use, deliveries
``versions/r0004_names_and_authors.py``    display names, cluster descriptions, authors
``versions/r0005_enrolments.py``           one-time enrolment tokens
``versions/r0006_event_partitions.py``     indexes for the events' retention by partition
``versions/r0007_cluster_joins_and_leases.py`` join secrets, leases, decommissioned appliances

A schema change comes with a new module in ``versions/`` whose ``down_revision`` is the
latest, and :data:`HEAD` names it; a test fails while the newest migration's schema differs
from ``schema.py``.

The store opens only a database at :data:`HEAD`. One with none of the store's tables is
created there (``create_all``, then stamped); any other is refused with the command to run.
A database created before migrations (tables, no ``alembic_version``) upgrades from the
baseline. Errors are :class:`SchemaMismatch`, one line each.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url

from ..errors import StoreError
from ..schema import metadata

HEAD = "0007"
BASELINE = "0001"
# the tables every database since the baseline has: proof that an unversioned one is ours
BASELINE_TABLES = frozenset(
    {
        "revisions",
        "documents",
        "assignments",
        "rollouts",
        "rollout_sites",
        "rollout_targets",
        "healthy_digests",
        "agents",
        "reports",
        "events",
    }
)
_LOCK = 0x6564_6764  # advisory lock key: one migrating process at a time on PostgreSQL


class SchemaMismatch(StoreError):
    """The database's schema is not the one this edgefleet runs on."""


def shown(url: str) -> str:
    """The URL as messages show it: the password masked."""
    return make_url(url).render_as_string(hide_password=True)


@functools.cache
def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def revision(conn: Connection) -> str | None:
    """The database's schema revision; None when it has no ``alembic_version``."""
    return MigrationContext.configure(conn).get_current_revision()


def _ours(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) & (BASELINE_TABLES | set(metadata.tables))


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})


def open_at_head(conn: Connection, url: str) -> None:
    """Within the caller's transaction: create an empty database at :data:`HEAD`, accept one
    there, refuse any other with what to run."""
    _lock(conn)
    found = revision(conn)
    if found == HEAD:
        return
    if found is None and not _ours(conn):
        metadata.create_all(conn)
        command.stamp(_config(conn), HEAD)
        return
    raise SchemaMismatch(_mismatch(found, url))


def _mismatch(found: str | None, url: str) -> str:
    where = f"database {shown(url)}"
    if found is None:
        state = "has no schema version (created before migrations)"
    elif _known(found):
        state = f"is at schema revision {found}, older than this edgefleet's {HEAD}"
    else:
        return (
            f"{where} is at schema revision {found}, newer than this edgefleet knows "
            f"(up to {HEAD}): run the edgefleet release that upgraded it"
        )
    return f"{where} {state}: run 'edgefleet db upgrade --db {shown(url)}'"


def _known(found: str) -> bool:
    return any(script.revision == found for script in scripts().walk_revisions())


def upgrade(conn: Connection, url: str) -> tuple[str, str]:
    """Within the caller's transaction: bring the database to :data:`HEAD`. Returns the
    revision it was at (``empty``, or the baseline for one created before migrations) and
    the one it is at now."""
    _lock(conn)
    found = revision(conn)
    if found is None:
        tables = _ours(conn)
        if not tables:
            metadata.create_all(conn)
            command.stamp(_config(conn), HEAD)
            return "empty", HEAD
        missing = sorted(BASELINE_TABLES - tables)
        if missing:
            raise SchemaMismatch(
                f"database {shown(url)} is not an edgefleet store: no table {', '.join(missing)}"
            )
        command.stamp(_config(conn), BASELINE)
        found = BASELINE
    elif not _known(found):
        raise SchemaMismatch(_mismatch(found, url))
    command.upgrade(_config(conn), "head")
    return found, HEAD
