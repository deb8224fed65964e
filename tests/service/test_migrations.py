"""Schema migrations on SQLite and on the real PostgreSQL: the newest migration builds exactly
``reconciler/store/schema.py``, a database deployed before migrations upgrades with
``edgefleet db upgrade`` keeping its rows, and the store and ``serve`` refuse a database at
another schema with one line naming what to run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, insert, select, text

from reconciler.store import SchemaMismatch, Store, upgrade_schema
from reconciler.store.migrations import BASELINE, HEAD, _config, scripts, shown
from reconciler.store.schema import metadata
from tests.integration.conftest import git
from tests.support.fleet import FleetFiles
from tests.support.keys import signing_key

from . import deployed_schema as deployed

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def differences(url: str, wanted: MetaData) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = compare_metadata(MigrationContext.configure(conn), wanted)
    finally:
        engine.dispose()
    return [d for d in found if not (d[0] == "remove_table" and d[1].name == "alembic_version")]


def edgefleet(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def deploy_old_database(url: str) -> None:
    """A database as release 0.1.0 left it, with a rollout that reverts one appliance."""
    engine = create_engine(url)
    with engine.begin() as conn:
        deployed.metadata.create_all(conn)
        conn.execute(
            insert(deployed.revisions),
            [{"sha": "1" * 40, "outcome": "good", "errors": [], "recorded_at": 1.0}],
        )
        conn.execute(
            insert(deployed.documents),
            [{"digest": d, "content": "{}", "stored_at": 1.0} for d in (DIGEST, OTHER)],
        )
        conn.execute(
            insert(deployed.rollouts),
            [{"revision": "1" * 40, "seq": 1, "state": "running", "wave": 0, "waves": [],
              "max_failures": "10%", "soak_seconds": 60.0, "failing": [], "started_at": 1.0,
              "updated_at": 1.0}],
        )  # fmt: skip
        target = {"revision": "1" * 40, "site": "s", "disruptive": False, "clusters": [],
                  "shared": [], "control_plane": False, "waiting": "", "changed": True}  # fmt: skip
        conn.execute(
            insert(deployed.rollout_targets),
            [{**target, "appliance": "back", "digest": DIGEST},
             {**target, "appliance": "new", "digest": OTHER}],
        )  # fmt: skip
        conn.execute(
            insert(deployed.healthy_digests),
            [{"appliance": "back", "digest": DIGEST, "first_healthy_at": 1.0}],
        )
    engine.dispose()


def test_the_newest_migration_is_schema_py(store_url: str) -> None:
    assert scripts().get_current_head() == HEAD
    assert upgrade_schema(store_url) == ("empty", HEAD)
    # a schema change without its migration fails here
    assert differences(store_url, metadata) == []


def test_the_baseline_is_the_deployed_schema(store_url: str) -> None:
    engine = create_engine(store_url)
    with engine.begin() as conn:
        command.upgrade(_config(conn), BASELINE)
    engine.dispose()
    assert differences(store_url, deployed.metadata) == []


def test_a_new_database_is_created_at_the_current_schema(store_url: str) -> None:
    Store(store_url).close()
    Store(store_url).close()  # and opened again as it is
    assert differences(store_url, metadata) == []
    assert upgrade_schema(store_url) == (HEAD, HEAD)


def test_a_deployed_database_upgrades_and_keeps_its_rows(store_url: str) -> None:
    deploy_old_database(store_url)
    with pytest.raises(SchemaMismatch) as refused:
        Store(store_url)
    assert str(refused.value) == (
        f"database {shown(store_url)} has no schema version (created before migrations): "
        f"run 'edgefleet db upgrade --db {shown(store_url)}'"
    )

    done = edgefleet("db", "upgrade", "--db", store_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"database {shown(store_url)}: schema {HEAD} (was {BASELINE})\n"
    assert differences(store_url, metadata) == []
    store = Store(store_url)
    try:
        with store.read() as tx:
            assert tx.revisions.latest("good").sha == "1" * 40  # type: ignore[union-attr]
            rollout = tx.rollouts.many(["1" * 40])["1" * 40]
            assert rollout.accepted == ()
            rows = tx.connection.execute(text("SELECT appliance, revert FROM rollout_targets"))
            reverts = {appliance: revert for appliance, revert in rows}
    finally:
        store.close()
    assert {k: bool(v) for k, v in reverts.items()} == {"back": True, "new": False}
    again = edgefleet("db", "upgrade", "--db", store_url)
    assert again.stdout.endswith(f"schema {HEAD} (nothing to do)\n")


def test_an_older_or_newer_schema_is_refused_in_one_line(store_url: str) -> None:
    engine = create_engine(store_url)
    with engine.begin() as conn:
        command.upgrade(_config(conn), BASELINE)
    with pytest.raises(SchemaMismatch, match=r"is at schema revision 0001, older than"):
        Store(store_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
        assert conn.execute(select(text("version_num")).select_from(text("alembic_version")))
    engine.dispose()
    with pytest.raises(SchemaMismatch) as newer:
        Store(store_url)
    assert str(newer.value) == (
        f"database {shown(store_url)} is at schema revision 0999, newer than this edgefleet "
        f"knows (up to {HEAD}): run the edgefleet release that upgraded it"
    )
    refused = edgefleet("db", "upgrade", "--db", store_url)
    assert refused.returncode == 1
    assert refused.stderr == f"edgefleet: {newer.value}\n"


def test_serve_refuses_a_deployed_database_in_one_line(
    store_url: str, fleet: FleetFiles, tmp_path: Path
) -> None:
    git(fleet.root, "init", "-q", "-b", "main")
    git(fleet.root, "add", "-A")
    git(fleet.root, "commit", "-qm", "the fleet")
    deploy_old_database(store_url)
    token = tmp_path / "bootstrap"
    token.write_text("bootstrap-token-for-tests-0123456789")
    done = edgefleet(
        "serve", str(fleet.root), "--db", store_url, "--listen", "127.0.0.1:0",
        "--bootstrap-token-file", str(token), "--signing-key", str(signing_key(tmp_path)),
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.endswith(f"run 'edgefleet db upgrade --db {shown(store_url)}'\n")
    assert done.stderr.count("\n") == 1, done.stderr
