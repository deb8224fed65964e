"""Kill -9 the server mid-rollout and start it again on the same SQLite file: it continues
where it was, agent tokens still work, nothing is lost or recorded twice.

The server runs in a subprocess (:mod:`.harness`); releases reach it as the reconcile loop
would hand them over after a push webhook, and its clock is a file the test writes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.rollout import Release
from tests.support.operators import VIEWER

from .agents import Agent
from .clocks import START
from .fleets import digests, release, revision, site
from .harness import SECRET, save_release
from .servers import ServerProcess, free_port

CANARY = site("grocery-1", ring="canary")
STORE = site("store-2")
HOSPITAL = site("hospital-1", "h-a", "h-b", "h-c", control_plane=["h-b"])
SITES = [CANARY, STORE, HOSPITAL]
HOUR = 3600


class World:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.now = START.timestamp()
        self.set_clock(0)
        self.server = ServerProcess(
            workdir=workdir, db_url=f"sqlite:///{workdir / 'edgefleet.db'}", port=free_port()
        )
        self.agents: dict[str, Agent] = {}
        self.deliveries = 0

    def set_clock(self, advance: float) -> None:
        self.now += advance
        (self.workdir / "clock").write_text(repr(self.now))

    def start(self) -> None:
        self.server.start()
        for agent in self.agents.values():  # same tokens, new connections
            agent.http.close()
            agent.http = httpx.Client(base_url=self.server.base_url, timeout=30)

    def push(self, rel: Release) -> httpx.Response:
        """What git does on a merge: the loop gets the release, the server a webhook."""
        save_release(self.workdir, rel)
        self.deliveries += 1
        body = json.dumps({"ref": "refs/heads/main", "after": rel.revision}).encode()
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        return httpx.post(
            f"{self.server.base_url}/v1/hooks/git",
            content=body,
            headers={
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": f"delivery-{self.deliveries}",
                "X-Hub-Signature-256": f"sha256={signature}",
            },
        )

    def fleet(self) -> dict[str, Any]:
        fleet: dict[str, Any] = (
            httpx.get(f"{self.server.base_url}/v1/fleet", headers=VIEWER).raise_for_status().json()
        )
        return fleet

    def served(self) -> dict[str, str | None]:
        return {a: agent.digest() for a, agent in self.agents.items()}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    w.start()
    try:
        yield w
    finally:
        w.server.stop()
        for agent in w.agents.values():
            agent.close()


def test_killed_mid_rollout_the_server_continues_where_it_was(world: World) -> None:
    for spec in SITES:
        for appliance in spec.appliances:
            agent = Agent(world.server.base_url, appliance)
            agent.register().raise_for_status()
            world.agents[appliance] = agent
    first = release(revision("r1"), SITES)
    assert world.push(first).status_code == 202
    for _ in range(3):
        for agent in world.agents.values():
            agent.apply()
    assert world.served() == digests(first)

    # r2 replaces nodes (a new image) and must soak two hours on the canary
    second = release(revision("r2"), SITES, image="k3s:next", soak_seconds=2 * HOUR)
    new, old = digests(second), digests(first)
    world.push(second).raise_for_status()
    world.agents["grocery-1-edge"].apply()
    world.set_clock(HOUR)
    world.agents["grocery-1-edge"].apply()
    assert world.served() == {**old, "grocery-1-edge": new["grocery-1-edge"]}
    before = world.fleet()

    world.server.kill()
    world.start()
    after = world.fleet()
    assert after["rollout"] == before["rollout"]
    assert after["revision"] == before["revision"]
    assert world.served() == {**old, "grocery-1-edge": new["grocery-1-edge"]}  # old tokens work
    # the loop hands the same release again after its own restart: nothing is duplicated
    world.push(second).raise_for_status()
    assert world.fleet()["rollout"]["startedAt"] == before["rollout"]["startedAt"]

    # the soak ends: the next wave opens; the hospital takes its change one appliance at a time
    world.set_clock(HOUR + 1)
    world.agents["grocery-1-edge"].apply()
    assert world.served() == {
        **old,
        "grocery-1-edge": new["grocery-1-edge"],
        "store-2-edge": new["store-2-edge"],
        "h-b": new["h-b"],
    }
    world.agents["h-b"].report(new["h-b"], phase="Provisioning").raise_for_status()

    world.server.kill()
    world.start()
    assert world.served()["h-a"] == old["h-a"]
    world.agents["h-b"].apply()
    assert world.served()["h-a"] == new["h-a"]
    world.agents["h-a"].apply()
    world.agents["h-c"].apply()
    world.agents["store-2-edge"].apply()
    assert world.served() == new
    world.set_clock(2 * HOUR + 1)
    for agent in world.agents.values():
        agent.apply()
    fleet = world.fleet()
    assert fleet["rollout"]["state"] == "done"

    # nothing recorded twice across two crashes and a repeated webhook
    metrics = httpx.get(f"{world.server.base_url}/metrics", headers=VIEWER).text
    assert 'edgefleet_revisions_total{outcome="good"} 2.0' in metrics
    site = httpx.get(f"{world.server.base_url}/v1/sites/hospital-1", headers=VIEWER).json()
    events = site["events"]
    released = [e["message"] for e in events if "released" in e["message"]]
    assert len(released) == len(set(released))
