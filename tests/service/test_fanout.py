"""A wave opening to many held agents costs no database read per agent: the new documents
are made ahead, once the revision is served to its first wave, and each long-poll answers
from memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reconciler.delivery import DesiredDocuments, Notifier
from reconciler.rollout import Release
from reconciler.rollout.service import TICK_WAITERS
from reconciler.store.rollouts import Rollouts
from tests.service.agents import Agent
from tests.support.service import Harness

from .fleets import WAVES, SiteSpec, digests, release, revision, site

STORES = [site(f"store-{n:03d}") for n in range(120)]
SITES = [site("canary-1", ring="canary"), *STORES]


def two_revisions(
    server: Harness, sites: list[SiteSpec], label: str
) -> tuple[dict[str, Agent], Release, Release]:
    """Every agent of ``sites`` applies a first revision; a second is released (its first
    wave served, the rest waiting)."""
    first = release(revision(f"{label}1"), sites, waves=WAVES)
    server.rollout.record_release(first)  # declared first: discovered ones are rate-limited
    agents = {a: server.agent(a) for s in sites for a in s.appliances}
    for agent in agents.values():
        agent.apply()
    server.rollout.tick()
    second = release(revision(f"{label}2"), sites, manifest="v2", waves=WAVES)
    server.rollout.record_release(second)
    return agents, first, second


def test_a_wave_wakes_its_held_agents_without_a_read_each(server: Harness) -> None:
    agents, first, second = two_revisions(server, SITES, "f")
    old, new = digests(first), digests(second)
    # every store long-polls for a state newer than the one it runs
    answers: dict[str, httpx.Response] = {}

    def wait(appliance: str) -> None:
        answers[appliance] = agents[appliance].desired(etag=old[appliance], wait=30)

    waiting = [a for s in STORES for a in s.appliances]
    threads = [threading.Thread(target=wait, args=(a,)) for a in waiting]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while server.rollout.notifier.waiting() < len(waiting):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # once the canary was served the new revision, the stores' documents were made ahead
    while server.made_ahead() < len(waiting):
        assert time.monotonic() < deadline, f"{server.made_ahead()} documents made ahead"
        time.sleep(0.05)
    with server.statements() as seen:
        agents["canary-1-edge"].apply()  # the canary proves it: the last wave opens
        for thread in threads:
            thread.join(30)
    assert {a: r.json()["digest"] for a, r in answers.items()} == {a: new[a] for a in waiting}
    reads = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    # the report, the tick and a bulk read of the assignments: not one read per agent, and
    # no document read or made again
    assert len(reads) < 40, f"{len(reads)} reads for {len(waiting)} agents"
    assert not [s for s in reads if "FROM documents" in s]
    assert server.made_ahead() == 0  # each was handed over as its agent was served


def test_documents_are_made_ahead_from_the_release_not_read_back(server: Harness) -> None:
    """The process that recorded a release has its contents in memory: the documents of
    the waves to come are made from them (reading back ten thousand took the interpreter
    for seconds while the first wave reported)."""
    with server.statements(thread="documents-ahead") as seen:
        agents, _, second = two_revisions(server, SITES, "m")
        deadline = time.monotonic() + 20
        stores = [a for s in STORES for a in s.appliances]
        while server.made_ahead() < len(stores):
            assert time.monotonic() < deadline, f"{server.made_ahead()} documents made ahead"
            time.sleep(0.05)
    assert seen, "the documents ahead were not made"
    assert not [s for s in seen if "documents.content" in s]
    # the contents kept to make them are let go as they are made (400 MB at 10,000 sites)
    (documents,) = [
        taker.__self__
        for taker in server.rollout.notifier._listeners  # noqa: SLF001 - what it keeps
        if isinstance(getattr(taker, "__self__", None), DesiredDocuments)
    ]
    assert documents._ahead_texts == {}  # noqa: SLF001
    agents["canary-1-edge"].apply()
    new = digests(second)
    assert {a: agents[a].digest() for a in stores} == {a: new[a] for a in stores}


@pytest.mark.parametrize("contents", ["in memory", "read from the store"])
def test_documents_ahead_wait_while_a_rollout_decision_runs(
    server: Harness, monkeypatch: pytest.MonkeyPatch, contents: str
) -> None:
    """Making documents ahead keeps the interpreter busy, from the release's contents in
    memory too (the bodies, each return from signing): a decision meanwhile (the wave
    opening) would wait for it at every row it reads or writes. A release this process did
    not record (another replica's) has no contents in memory: they are read."""
    if contents == "read from the store":
        monkeypatch.setattr(Notifier, "offered", lambda _self, _revision: {})
    with server.rollout.notifier.deciding():  # a decision under way
        two_revisions(server, SITES, "d")
        time.sleep(0.5)
        assert server.made_ahead() == 0
    stores = [a for s in STORES for a in s.appliances]
    deadline = time.monotonic() + 20
    while server.made_ahead() < len(stores):  # once it is taken, they are made
        assert time.monotonic() < deadline, f"{server.made_ahead()} documents made ahead"
        time.sleep(0.05)


def test_a_tick_holds_documents_ahead_while_it_decides_not_while_it_reads(
    server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick reads every site and target of the rollout (a second over ten thousand sites)
    before it decides: documents are made ahead meanwhile (with no soak, the reads of the
    tick that opens a wave are when its documents get made), and wait from the moment it
    decides until it has written."""
    notifier = server.rollout.notifier
    free: dict[str, bool] = {}  # whether documents ahead may be made, when it reads, writes
    reads, saves = Rollouts.sites, Rollouts.save

    def reading(rollouts: Rollouts, revision: str) -> Any:
        free["reading"] = notifier.undecided(0)
        return reads(rollouts, revision)

    def writing(rollouts: Rollouts, record: Any) -> None:
        free["writing"] = notifier.undecided(0)
        saves(rollouts, record)

    server.rollout.record_release(release(revision("t1"), SITES, waves=WAVES))
    monkeypatch.setattr(Rollouts, "sites", reading)
    monkeypatch.setattr(Rollouts, "save", writing)
    server.rollout.tick()
    assert free == {"reading": True, "writing": False}
    assert notifier.undecided(0)  # and afterwards


def test_reports_that_arrive_while_a_tick_runs_do_not_wait_for_it(server: Harness) -> None:
    """A wave of agents reporting at once: past a few that wait for the tick covering
    them, each report is answered once recorded, and the tick running meanwhile goes round
    again for them. (Every report used to wait for a tick: 22 reports a second at 10,000
    sites, every API worker thread waiting.)"""
    sites = [site("canary-1", ring="canary"), *(site(f"store-{n:02d}") for n in range(20))]
    agents, _, second = two_revisions(server, sites, "t")
    new = digests(second)
    canary, *stores = (agents[a] for s in sites for a in s.appliances)
    assert canary.digest() == new[canary.appliance]

    ticking, go_on = threading.Event(), threading.Event()
    tick = server.rollout.tick

    def held_tick() -> None:  # the real tick, started and then held as a slow one would be
        ticking.set()
        assert go_on.wait(30)
        tick()

    server.rollout.tick = held_tick  # type: ignore[method-assign]
    try:
        reporter = threading.Thread(target=canary.apply)  # its report starts the tick
        reporter.start()
        assert ticking.wait(10)
        answered: list[str] = []

        def heartbeat(agent: Agent) -> None:  # the state it runs, while the tick is held
            agent.report(agent.digest()).raise_for_status()
            answered.append(agent.appliance)

        beating = [threading.Thread(target=heartbeat, args=(a,)) for a in stores]
        for thread in beating:
            thread.start()
        deadline = time.monotonic() + 10
        while len(answered) < len(stores) - TICK_WAITERS and time.monotonic() < deadline:
            time.sleep(0.05)
        returned = len(answered)  # while the tick is still held
        go_on.set()
        for thread in [reporter, *beating]:
            thread.join(30)
    finally:
        server.rollout.tick = tick  # type: ignore[method-assign]
    assert returned >= len(stores) - TICK_WAITERS, f"{returned} reports answered behind a tick"
    assert len(answered) == len(stores)  # the few that waited were answered after it
    # the canary's report opened the next wave, by the tick that covered it
    deadline = time.monotonic() + 10
    while any(a.digest() != new[a.appliance] for a in stores):
        assert time.monotonic() < deadline, "the next wave did not open"
        time.sleep(0.1)


@pytest.fixture
def go_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The thread that makes documents ahead, held before it makes any until the event is
    set (set at the end of the test in any case)."""
    go_on = threading.Event()
    make = DesiredDocuments._make  # noqa: SLF001 - holding the thread that makes ahead

    def held(self: DesiredDocuments, *args: Any) -> Any:
        if threading.current_thread().name == "documents-ahead":
            assert go_on.wait(30)
        return make(self, *args)

    monkeypatch.setattr(DesiredDocuments, "_make", held)
    try:
        yield go_on
    finally:
        go_on.set()


def test_documents_served_while_being_made_ahead_are_not_kept(
    server: Harness, go_on: threading.Event
) -> None:
    """The wave opens while its documents are still being made ahead: its agents are served
    documents made then, and what the background thread goes on to make for them is not
    kept (it was kept, unused, until the next rollout)."""
    agents, _, second = two_revisions(server, SITES, "h")
    agents["canary-1-edge"].apply()  # the last wave opens, its documents not made ahead yet
    new = digests(second)
    stores = [a for s in STORES for a in s.appliances]
    assert {a: agents[a].digest() for a in stores} == {a: new[a] for a in stores}
    go_on.set()
    deadline = time.monotonic() + 30
    while any(t.name == "documents-ahead" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "still making documents ahead"
        time.sleep(0.05)
    assert server.made_ahead() == 0


def test_a_wave_that_opens_before_its_documents_are_made_makes_them_without_a_read(
    server: Harness, go_on: threading.Event
) -> None:
    """The wave opens while the documents ahead are still to be made (a wave with no soak,
    its canaries quick): they are made as the wave is handed over, from the contents kept
    since the release, not read back (ten thousand read beside the agents being answered
    took seconds)."""
    agents, _, second = two_revisions(server, SITES, "k")
    stores = [a for s in STORES for a in s.appliances]
    with server.statements() as seen:
        agents["canary-1-edge"].apply()  # the last wave opens
        new = digests(second)
        assert {a: agents[a].digest() for a in stores} == {a: new[a] for a in stores}
    go_on.set()
    assert server.made_ahead() == 0
    assert not [s for s in seen if "FROM documents" in s]
