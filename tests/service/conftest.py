"""Service tier: the reconciler's store, rollout service and HTTP API against real
dependencies.

Provides:
- ``clock``: a :class:`ManualClock`, so soak times and maintenance windows pass without
  sleeping;
- ``server``: the real API served by uvicorn on 127.0.0.1 (a free port, in a background
  thread) over a fresh SQLite file, with ``agent(...)`` to make HTTP clients that play
  agents and ``rollout`` to hand over releases as the reconcile loop does;
- ``postgres``: a throwaway PostgreSQL server started for the session (Debian's
  ``postgresql``, run as a non-root user on a unix socket); ``store_url`` runs a test
  against SQLite and against it. Tests skip with the reason when PostgreSQL cannot start;
- the restart tests run the server as a subprocess (:mod:`.harness`) to kill it with -9;
- ``served``: a fleet committed to a git repository, for ``edgefleet serve`` run as a
  process (:mod:`.serving`), stopped at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.api import PushEvent, create_app
from reconciler.rollout import RolloutService
from reconciler.store import Store
from tests.integration.conftest import git
from tests.support.fleet import FleetFiles, write_base_fleet
from tests.support.operators import ADMIN, VIEWER, operator_tokens, write_token_file

from .agents import BOOTSTRAP, Agent
from .clocks import ManualClock
from .postgres import PostgresServer, PostgresUnavailable, start_postgres
from .servers import ServerThread, free_port
from .serving import Served

WEBHOOK_SECRET = "webhook-secret-for-tests"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@dataclass
class Harness:
    """A running server and what the tests do to it."""

    base_url: str
    store: Store
    rollout: RolloutService
    clock: ManualClock
    pushes: list[PushEvent] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)
    http: httpx.Client = field(init=False)  # a viewer's client
    admin: httpx.Client = field(init=False)  # an admin's client

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.base_url, timeout=30, headers=VIEWER)
        self.admin = httpx.Client(base_url=self.base_url, timeout=30, headers=ADMIN)

    def agent(self, appliance: str, *, register: bool = True) -> Agent:
        agent = Agent(self.base_url, appliance)
        self.agents.append(agent)
        if register:
            agent.register().raise_for_status()
        return agent

    def fleet(self) -> dict[str, Any]:
        fleet: dict[str, Any] = self.http.get("/v1/fleet").raise_for_status().json()
        return fleet

    def site(self, name: str) -> dict[str, Any]:
        site: dict[str, Any] = self.http.get(f"/v1/sites/{name}").raise_for_status().json()
        return site

    def close(self) -> None:
        for agent in self.agents:
            agent.close()
        self.http.close()
        self.admin.close()


@pytest.fixture
def server(tmp_path: Path, clock: ManualClock) -> Iterator[Harness]:
    store = Store(f"sqlite:///{tmp_path / 'edgefleet.db'}")
    rollout = RolloutService(store=store, clock=clock, heartbeat_timeout=90)
    pushes: list[PushEvent] = []
    app = create_app(
        store=store,
        rollout=rollout,
        clock=clock,
        bootstrap_token=BOOTSTRAP,
        webhook_secret=WEBHOOK_SECRET,
        on_push=pushes.append,
        tick_interval=None,  # tests tick after moving the clock
        operators=operator_tokens(),
    )
    running = ServerThread(app).start()
    harness = Harness(running.base_url, store, rollout, clock, pushes)
    try:
        yield harness
    finally:
        harness.close()
        running.stop()
        store.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer | None]:
    try:
        server = start_postgres()
    except PostgresUnavailable as e:
        pytest.skip(str(e))
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
    found = Served(fleet, work, free_port(), str(fleet.root))
    try:
        yield found
    finally:
        found.stop()
