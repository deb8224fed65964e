"""Several ``edgefleet serve`` replicas on one PostgreSQL database (the one the tests start),
over one git repository, with agents spread across them: one replica reconciles (and
another takes over when it is killed with -9), every replica wakes its agents and drops its
caches within a second of a change made anywhere, and a pause holds everywhere. On SQLite a
second server is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.fleet import FleetFiles, _store, write_base_fleet
from tests.support.git import git
from tests.support.keys import signing_key
from tests.support.operators import ADMIN, VIEWER, write_token_file

from .agents import BOOTSTRAP, Agent
from .postgres import PostgresServer
from .servers import free_port


@dataclass
class Replica:
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reconciling(self) -> bool:
        return bool(httpx.get(f"{self.url}/healthz", timeout=5).json()["reconciling"])


@dataclass
class Fleet:
    files: FleetFiles
    work: Path
    db: str
    replicas: list[Replica] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)

    def start(self, *extra: str) -> Replica:
        port = free_port()
        log = self.work / f"replica-{port}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "serve", str(self.files.root),
                 "--listen", f"127.0.0.1:{port}", "--db", self.db,
                 "--bootstrap-token-file", str(self.work / "bootstrap"),
                 "--operator-token-file", str(self.work / "operators"),
                 "--signing-key", str(self.work / "signing.pem"),
                 "--tick-interval", "0.2", *extra],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        replica = Replica(port, log, process)
        self.replicas.append(replica)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{replica.url}/healthz", timeout=1).status_code == 200:
                    return replica
            except httpx.HTTPError:
                pass
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
        raise AssertionError("replica did not start:\n" + log.read_text()[-3000:])

    def leader(self, timeout: float = 15) -> Replica:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leading = [r for r in self.replicas if r.process.poll() is None and r.reconciling()]
            if leading:
                assert len(leading) == 1, "two replicas reconcile at once"
                return leading[0]
            time.sleep(0.1)
        raise AssertionError("no replica reconciles")

    def commit(self, message: str) -> None:
        git(self.files.root, "add", "-A")
        git(self.files.root, "commit", "-qm", message)

    def agent(self, appliance: str, replica: Replica) -> Agent:
        agent = Agent(replica.url, appliance)
        assert agent.register().status_code == 200
        self.agents.append(agent)
        return agent

    def fleet(self, replica: Replica) -> dict[str, object]:
        found: dict[str, object] = httpx.get(f"{replica.url}/v1/fleet", headers=VIEWER).json()
        return found

    def stop(self) -> None:
        for agent in self.agents:
            agent.close()
        for replica in self.replicas:
            if replica.process.poll() is None:
                os.killpg(replica.process.pid, signal.SIGTERM)
        for replica in self.replicas:
            try:
                replica.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(replica.process.pid, signal.SIGKILL)


@pytest.fixture
def fleet(tmp_path: Path, postgres: PostgresServer) -> Iterator[Fleet]:
    files = FleetFiles(tmp_path / "fleet")
    write_base_fleet(files)
    files.edit("fleet.yaml", "soak: 10m", "soak: 0s")
    git(files.root, "init", "-q", "-b", "main")
    files_commit(files, "the fleet")
    work = tmp_path / "work"
    work.mkdir()
    (work / "bootstrap").write_text(BOOTSTRAP)
    write_token_file(work / "operators")
    signing_key(work)
    found = Fleet(files, work, postgres.url(postgres.create_database()))
    try:
        yield found
    finally:
        found.stop()


def files_commit(files: FleetFiles, message: str) -> None:
    git(files.root, "add", "-A")
    git(files.root, "commit", "-qm", message)


def one_wave(fleet: Fleet) -> None:
    """Every site in one wave: a change reaches every appliance at once."""
    fleet.files.edit(
        "fleet.yaml",
        "      - name: canary\n        selector:\n          labels:\n            ring: canary\n",
        "",
    )


STORES = [f"store-{n}-a" for n in range(2, 6)]


def more_stores(fleet: Fleet) -> None:
    for n in range(2, 6):
        _store(fleet.files, f"store-{n}", f"store-{n}-a", "bare-metal", "ring: general",
               f"192.168.{n}.0/24", f"000{n}")  # fmt: skip


def store_config_changes(fleet: Fleet, value: str) -> None:
    """A manifest change for every store: no node is replaced."""
    text = fleet.files.read("profiles/store-1.0.0.yaml")
    line = next(x for x in text.splitlines() if 'storeId: "{{ vars.storeId }}"' in x)
    indent = line[: len(line) - len(line.lstrip())]
    fleet.files.edit("profiles/store-1.0.0.yaml", line, f'{line}\n{indent}note: "{value}"')


def served_everywhere(fleet: Fleet, agents: dict[str, Agent]) -> dict[str, str]:
    """Wait until every agent is served a state; returns the digests."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = {a: agent.digest() for a, agent in agents.items()}
        if all(found.values()):
            return {a: d for a, d in found.items() if d}
        time.sleep(0.2)
    raise AssertionError(f"not every agent was served: {found}")


def test_one_replica_reconciles_and_a_commit_wakes_every_agent_on_every_replica(
    fleet: Fleet,
) -> None:
    one_wave(fleet)
    more_stores(fleet)
    fleet.commit("one wave, five stores")
    replicas = [fleet.start() for _ in range(3)]
    leader = fleet.leader()
    assert sum(r.reconciling() for r in replicas) == 1
    names = ["store-1-a", *STORES, "restaurant-7-a"]
    agents = {a: fleet.agent(a, replicas[i % 3]) for i, a in enumerate(names)}
    before = served_everywhere(fleet, agents)
    # every agent long-polls its own replica for a state newer than the one it has
    answered: dict[str, float] = {}

    def wait(appliance: str) -> None:
        answer = agents[appliance].desired(etag=before[appliance], wait=30)
        if answer.status_code == 200:
            answered[appliance] = time.monotonic()

    threads = [threading.Thread(target=wait, args=(a,)) for a in names]
    for thread in threads:
        thread.start()
    time.sleep(1)
    store_config_changes(fleet, "v2")
    committed = time.monotonic()
    fleet.commit("a note in every store's config")
    for thread in threads:
        thread.join(30)
    assert set(answered) == set(names)  # every one runs the store profile
    leaders = {a for i, a in enumerate(names) if replicas[i % 3] is leader}
    first = min(answered.values())
    # the leader's own agents are woken in-process; the others through PostgreSQL NOTIFY
    spread = max(answered.values()) - first
    assert spread < 1.0, f"agents on other replicas woke {spread:.2f} s after the first"
    assert max(answered.values()) - committed < 10
    assert leaders  # the leader serves some of them too


@pytest.mark.parametrize("change", ["rotation", "reset"])
def test_a_changed_token_stops_working_on_every_replica_at_once(fleet: Fleet, change: str) -> None:
    replicas = [fleet.start() for _ in range(3)]
    agent = fleet.agent("store-1-a", replicas[0])
    old = agent.token
    others = [Agent(r.url, "store-1-a") for r in replicas[1:]]
    for other in others:
        other.token = old
        assert other.desired().status_code in (200, 404)  # known, and now cached there
    if change == "rotation":
        assert agent.rotate().status_code == 200  # a new token on replica A
    else:  # an admin resets the appliance on replica A
        reset = httpx.post(f"{replicas[0].url}/v1/appliances/store-1-a/reset", headers=ADMIN)
        assert reset.json()["registered"] is True
    changed = time.monotonic()
    for other in others:
        while other.desired().status_code != 401:
            assert time.monotonic() - changed < 1.0, "the old token still works elsewhere"
            time.sleep(0.02)
        other.close()


def test_the_next_replica_takes_over_when_the_leader_is_killed(fleet: Fleet) -> None:
    replicas = [fleet.start() for _ in range(3)]
    leader = fleet.leader()
    survivors = [r for r in replicas if r is not leader]
    canary = fleet.agent("store-1-a", survivors[0])
    more_stores(fleet)
    fleet.commit("five stores")
    later = fleet.agent("store-2-a", survivors[1])
    served_everywhere(fleet, {"store-1-a": canary})
    canary.apply()
    served_everywhere(fleet, {"store-2-a": later})
    later.apply()
    # a change for both waves; the leader records it, the canary gets it, then the leader dies
    store_config_changes(fleet, "v3")
    old_canary, old_later = canary.digest(), later.digest()
    fleet.commit("a note in every store's config")
    deadline = time.monotonic() + 20
    while canary.digest() == old_canary:
        assert time.monotonic() < deadline, "the canary never got the change"
        time.sleep(0.1)
    assert later.digest() == old_later
    os.killpg(leader.process.pid, signal.SIGKILL)
    leader.process.wait(10)
    killed = time.monotonic()
    # another replica takes over within 10 s
    successor = fleet.leader(timeout=10)
    assert successor in survivors
    assert time.monotonic() - killed < 10
    # the rollout carries on: the canary runs it healthy, the later wave gets it
    canary.apply()
    deadline = time.monotonic() + 20
    while later.digest() == old_later:
        assert time.monotonic() < deadline, "the later wave never got the change"
        time.sleep(0.2)
    later.apply()
    # a new commit is reconciled by the successor; nothing was recorded twice
    store_config_changes(fleet, "v4")
    fleet.commit("another note")
    deadline = time.monotonic() + 20
    while True:
        revisions = httpx.get(f"{successor.url}/v1/revisions", headers=VIEWER).json()["revisions"]
        if len(revisions) == 4:
            break
        assert time.monotonic() < deadline, revisions
        time.sleep(0.2)
    shas = [r["sha"] for r in revisions]
    assert len(shas) == len(set(shas))
    assert [r["outcome"] for r in revisions] == ["good"] * 4


def test_a_pause_on_one_replica_holds_on_every_replica(fleet: Fleet) -> None:
    one_wave(fleet)
    fleet.commit("one wave")
    replicas = [fleet.start() for _ in range(3)]
    agent = fleet.agent("store-1-a", replicas[2])
    before = served_everywhere(fleet, {"store-1-a": agent})["store-1-a"]
    answer = httpx.post(f"{replicas[1].url}/v1/rollout/pause", headers=ADMIN, timeout=10)
    assert answer.status_code == 200
    assert all(fleet.fleet(r)["rollout"]["paused"] for r in replicas)  # type: ignore[index]
    store_config_changes(fleet, "v5")
    fleet.commit("held by the pause")
    head = git(fleet.files.root, "rev-parse", "HEAD").strip()
    deadline = time.monotonic() + 20
    while fleet.fleet(replicas[0])["revision"]["sha"] != head:  # type: ignore[index]
        assert time.monotonic() < deadline, "the commit was not recorded"
        time.sleep(0.1)
    fleet.leader()
    time.sleep(1)  # ticks every 0.2 s on every replica: none may release it
    assert agent.digest() == before
    assert httpx.post(f"{replicas[0].url}/v1/rollout/resume", headers=ADMIN).status_code == 200
    deadline = time.monotonic() + 10
    while agent.digest() == before:
        assert time.monotonic() < deadline, "resume on another replica released nothing"
        time.sleep(0.1)


def test_a_second_server_on_one_sqlite_database_is_refused(tmp_path: Path) -> None:
    files = FleetFiles(tmp_path / "fleet")
    write_base_fleet(files)
    git(files.root, "init", "-q", "-b", "main")
    files_commit(files, "the fleet")
    work = tmp_path / "work"
    work.mkdir()
    (work / "bootstrap").write_text(BOOTSTRAP)
    write_token_file(work / "operators")
    signing_key(work)
    db = f"sqlite:///{work / 'one.db'}"
    first = Fleet(files, work, db)
    try:
        first.start()
        answer = subprocess.run(
            [sys.executable, "-m", "reconciler", "serve", str(files.root), "--db", db,
             "--listen", f"127.0.0.1:{free_port()}",
             "--bootstrap-token-file", str(work / "bootstrap"),
             "--signing-key", str(work / "signing.pem")],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert answer.returncode == 1
        assert answer.stderr.strip() == (
            f"edgefleet: another edgefleet serve uses {db}: one process serves a SQLite "
            "database; run several replicas on PostgreSQL"
        )
    finally:
        first.stop()
