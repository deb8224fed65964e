"""Service tier: the reconciler's store, rollout service and HTTP API against real
dependencies.

Provides:
- ``clock``: a :class:`ManualClock`, so soak times and maintenance windows pass without
  sleeping;
- ``server``: the real API served by uvicorn on 127.0.0.1 (a free port, in a background
  thread) over a fresh SQLite file, with ``agent(...)`` to make HTTP clients that play
  agents and ``rollout`` to hand over releases as the reconcile loop does; ``server_with``
  makes one with other settings of ``create_app`` (no bootstrap token, lower limits);
- ``postgres``: a throwaway PostgreSQL server started for the session (Debian's
  ``postgresql``, run as a non-root user on a unix socket); ``store_url`` runs a test
  against SQLite and against it (without PostgreSQL: skipped, or failed when ``CI`` is set);
- the restart tests run the server as a subprocess (:mod:`.harness`) to kill it with -9;
- ``served``: a fleet committed to a git repository, for ``edgefleet serve`` run as a
  process (:mod:`.serving`), stopped at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.api import PushEvent, create_app
from reconciler.rollout import RolloutService
from reconciler.store import Store
from tests.support.fleet import FleetFiles, write_base_fleet
from tests.support.git import git
from tests.support.keys import signing_key
from tests.support.operators import operator_tokens, write_token_file
from tests.support.service import WEBHOOK_SECRET, Harness
from tests.support.services import unavailable

from .agents import BOOTSTRAP
from .clocks import ManualClock
from .postgres import PostgresServer, PostgresUnavailable, start_postgres
from .servers import ServerThread, free_port
from .serving import Served


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def server_with(tmp_path: Path, clock: ManualClock) -> Iterator[Callable[..., Harness]]:
    stops: list[Callable[[], None]] = []

    def start(**settings: Any) -> Harness:
        store = Store(f"sqlite:///{tmp_path / f'edgefleet-{len(stops)}.db'}")
        rollout = RolloutService(store=store, clock=clock, heartbeat_timeout=90)
        pushes: list[PushEvent] = []
        options: dict[str, Any] = {
            "bootstrap_token": BOOTSTRAP,
            "webhook_secret": WEBHOOK_SECRET,
            "on_push": pushes.append,
            "tick_interval": None,  # tests tick after moving the clock
            "operators": operator_tokens(),
            **settings,
        }
        app = create_app(store=store, rollout=rollout, clock=clock, **options)
        running = ServerThread(app).start()
        harness = Harness(running.base_url, store, rollout, clock, pushes)

        def stop() -> None:
            harness.close()
            running.stop()
            store.close()

        stops.append(stop)
        return harness

    try:
        yield start
    finally:
        for stop in reversed(stops):
            stop()


@pytest.fixture
def server(server_with: Callable[..., Harness]) -> Harness:
    return server_with()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer | None]:
    try:
        server = start_postgres()
    except PostgresUnavailable as e:
        unavailable(str(e))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    pg: PostgresServer = request.getfixturevalue("postgres")
    return pg.url(pg.create_database())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    fleet = FleetFiles(tmp_path / "fleet")
    write_base_fleet(fleet)
    fleet.edit("fleet.yaml", "soak: 10m", "soak: 0s")
    git(fleet.root, "init", "-q", "-b", "main")
    git(fleet.root, "add", "-A")
    git(fleet.root, "commit", "-qm", "the fleet")
    work = tmp_path / "work"
    work.mkdir()
    (work / "bootstrap").write_text(BOOTSTRAP)
    write_token_file(work / "operators")
    signing_key(work)
    found = Served(fleet, work, free_port(), str(fleet.root))
    try:
        yield found
    finally:
        found.stop()
