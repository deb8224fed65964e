"""The service tier's running API server and what the tests do to it: agents over HTTP, the
fleet and site views."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import event

from reconciler.api import PushEvent
from reconciler.rollout import RolloutService
from reconciler.store import Store
from tests.service.agents import Agent
from tests.service.clocks import ManualClock
from tests.support.operators import ADMIN, VIEWER

WEBHOOK_SECRET = "webhook-secret-for-tests"


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

    def made_ahead(self) -> int:
        """The documents made ahead of their wave (the server's gauge)."""
        metrics = self.http.get("/metrics").raise_for_status().text
        (line,) = [
            m for m in metrics.splitlines() if m.startswith("edgefleet_documents_made_ahead ")
        ]
        return int(float(line.split()[1]))

    @contextmanager
    def statements(self, thread: str | None = None) -> Iterator[list[str]]:
        """Every SQL statement the store runs inside the block (on ``thread`` alone)."""
        seen: list[str] = []
        engine = self.store._engine  # noqa: SLF001 - counting what the store sends

        def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            if thread is None or threading.current_thread().name == thread:
                seen.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            yield seen
        finally:
            event.remove(engine, "before_cursor_execute", count)

    def close(self) -> None:
        for agent in self.agents:
            agent.close()
        self.http.close()
        self.admin.close()
