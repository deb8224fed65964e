"""The store suite, run against SQLite and against a real PostgreSQL server."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from agent.contract import StatusReport
from reconciler.rollout import RolloutService
from reconciler.store import (
    AgentRecord,
    Assignment,
    EventRecord,
    ReportRecord,
    RevisionRecord,
    RolloutRecord,
    RolloutSite,
    RolloutTarget,
    Store,
    StoreConflict,
    StoreError,
    StoreUnavailable,
    amended,
)
from reconciler.store.events import RETENTION, Events, Retention

from .clocks import ManualClock
from .fleets import digests, release, revision, site


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    yield opened
    opened.close()


def test_revisions_keep_their_order_outcome_and_errors(store: Store) -> None:
    with store.write() as tx:
        good = tx.revisions.add(RevisionRecord("a" * 40, "good", (), 10.0, 0.5))
        bad = tx.revisions.add(RevisionRecord("b" * 40, "failed", ("x.yaml:1: no",), 11.0))
    assert bad.seq > good.seq
    with store.read() as tx:
        assert tx.revisions.latest() == bad
        assert tx.revisions.latest("good") == good
        assert tx.revisions.get("b" * 40) == bad
        assert tx.revisions.counts() == {"good": 1, "failed": 1}
        assert tx.figures.reconcile_histogram((0.25, 0.5, 1.0)) == ([0, 1, 1], 1, 0.5)
    with pytest.raises(StoreConflict), store.write() as tx:
        tx.revisions.add(RevisionRecord("a" * 40, "good", (), 12.0))


def test_a_transaction_that_fails_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(RuntimeError), store.write() as tx:
        tx.revisions.add(RevisionRecord("c" * 40, "good", (), 1.0))
        raise RuntimeError("half-way")
    with store.read() as tx:
        assert tx.revisions.latest() is None


def test_documents_are_stored_once_per_digest(store: Store) -> None:
    with store.write() as tx:
        tx.documents.put({"sha256:1": '{"a":1}', "sha256:2": '{"b":2}'}, at=1.0)
        tx.documents.put({"sha256:1": '{"a":1}'}, at=2.0)
    with store.read() as tx:
        assert tx.documents.get("sha256:1") == '{"a":1}'
        assert tx.documents.known({"sha256:1", "sha256:3"}) == {"sha256:1"}
        count = tx.connection.exec_driver_sql("SELECT count(*) FROM documents").scalar()
    assert count == 2


def test_assignments_are_upserted(store: Store) -> None:
    with store.write() as tx:
        tx.documents.put({"sha256:1": "{}", "sha256:2": "{}"}, at=1.0)
        tx.assignments.put(Assignment("a1", "s1", True, target_digest="sha256:1"))
        tx.assignments.put(Assignment("a2", "s2", False))
    with store.write() as tx:
        before = tx.assignments.get("a1")
        assert before is not None
        tx.assignments.put(
            replace(before, served_digest="sha256:2", served_revision="r", served_at=5.0)
        )
    with store.read() as tx:
        assert tx.assignments.get("a1") == Assignment(
            "a1", "s1", True, "sha256:2", "r", 5.0, "sha256:1", None
        )
        assert [a.appliance for a in tx.assignments.for_site("s2")] == ["a2"]
        assert len(tx.assignments.all()) == 2


def test_rollouts_round_trip_with_sites_and_targets(store: Store) -> None:
    rollout = RolloutRecord(
        revision="r" * 40,
        seq=1,
        state="running",
        wave=0,
        waves=({"name": "canary", "labels": {"ring": "canary"}}, {"name": "all", "labels": {}}),
        max_failures="10%",
        soak_seconds=7200.0,
        failing=(),
        started_at=1.0,
        updated_at=1.0,
    )
    site_row = RolloutSite(
        revision=rollout.revision,
        site="s1",
        wave=1,
        labels={"ring": "general"},
        timezone="Europe/Berlin",
        windows=({"days": ["sun"], "start": "03:00", "duration": "12h"},),
        changed=True,
        revert=False,
        state="pending",
    )
    target = RolloutTarget(
        revision=rollout.revision,
        appliance="a1",
        site="s1",
        digest="sha256:1",
        changed=True,
        disruptive=True,
        clusters=("c1",),
        shared=("c1",),
        control_plane=True,
    )
    with store.write(exclusive=True) as tx:
        tx.documents.put({"sha256:1": "{}"}, at=1.0)
        tx.revisions.add(RevisionRecord(rollout.revision, "good", (), 1.0))
        tx.rollouts.add(rollout)
        tx.rollouts.add_sites([site_row])
        tx.rollouts.add_targets([target])
    with store.write(exclusive=True) as tx:
        tx.rollouts.save(replace(rollout, state="halted", failing=("s1",), wave=1))
        tx.rollouts.save_sites([replace(site_row, state="failed", failed_at=3.0, failure="boom")])
        tx.rollouts.save_targets([replace(target, released_at=2.0, waiting="")])
    with store.read() as tx:
        assert tx.rollouts.get(rollout.revision) == replace(
            rollout, state="halted", failing=("s1",), wave=1
        )
        assert [r.revision for r in tx.rollouts.open()] == [rollout.revision]
        assert tx.rollouts.sites(rollout.revision) == [
            replace(site_row, state="failed", failed_at=3.0, failure="boom")
        ]
        assert tx.rollouts.site(rollout.revision, "s1") is not None
        assert tx.rollouts.targets(rollout.revision, site="s1") == [
            replace(target, released_at=2.0)
        ]
        assert tx.rollouts.target(rollout.revision, "a1") == replace(target, released_at=2.0)
        assert tx.rollouts.latest() is not None


def test_many_rows_at_once_round_trip_with_json_booleans_and_nulls(store: Store) -> None:
    """Thousands of rows go to the driver as one statement's SQL with each value passed
    through its column's bind processor (not SQLAlchemy's per-row parameters): what a
    release writes reads back the same, on either database."""
    rollout = RolloutRecord("r" * 40, 1, "running", 0, ({"name": "all", "labels": {}},), "10%",
                            0.0, (), 1.0, 1.0)  # fmt: skip
    sites = [
        RolloutSite(rollout.revision, f"s{i}", 0, {"ring": f"r{i}", "n": str(i)}, "UTC",
                    ({"days": ["sun"], "start": "03:00", "duration": "1h"},) if i % 2 else (),
                    changed=i % 3 == 0, revert=False, state="pending",
                    descriptions={"c": "it's \"quoted\" ü"} if i % 2 else {})
        for i in range(300)
    ]  # fmt: skip
    targets = [
        RolloutTarget(rollout.revision, f"a{i}", f"s{i}", "sha256:1" if i % 2 else None,
                      changed=bool(i % 2), disruptive=i % 5 == 0, clusters=(f"c{i}", "x"),
                      shared=() if i % 2 else ("x",), control_plane=i % 7 == 0)
        for i in range(300)
    ]  # fmt: skip
    with store.write(exclusive=True) as tx:
        tx.documents.put({"sha256:1": "{}", "sha256:2": "{}"}, at=1.0)
        tx.revisions.add(RevisionRecord(rollout.revision, "good", (), 1.0))
        tx.rollouts.add(rollout)
        tx.rollouts.add_sites(sites)
        tx.rollouts.add_targets(targets)
        tx.assignments.put_many([Assignment(t.appliance, t.site, False) for t in targets])
        tx.events.add(
            [
                EventRecord(float(i), "info", "released", f"site s{i}", site=f"s{i}")
                for i in range(5)
            ]
        )
    sites = [replace(s, state="done", done_at=2.0, waiting="ok") for s in sites[::2]] + sites[1::2]
    targets = [replace(t, released_at=3.0, changed=not t.changed) for t in targets]
    assigned = [Assignment(t.appliance, t.site, True, t.digest, "r", 3.0) for t in targets[::3]]
    with store.write(exclusive=True) as tx:
        tx.rollouts.save_sites(sites)
        tx.rollouts.save_targets(targets)
        tx.assignments.put_many(assigned)
    with store.read() as tx:
        by_site = {s.site: s for s in tx.rollouts.sites(rollout.revision)}
        assert by_site == {s.site: s for s in sites}
        assert tx.rollouts.targets(rollout.revision) == sorted(targets, key=lambda t: t.appliance)
        stored = {a.appliance: a for a in tx.assignments.all()}
        assert len(stored) == 300
        assert all(stored[a.appliance] == a for a in assigned)
        assert stored["a1"] == Assignment("a1", "s1", False)
        assert [e.message for e in tx.events.recent(limit=10)] == [
            f"site s{i}" for i in (4, 3, 2, 1, 0)
        ]


def test_an_amended_record_is_what_replace_makes_and_refuses_unknown_fields() -> None:
    target = RolloutTarget("r" * 40, "a1", "s1", "sha256:1", changed=True, disruptive=False,
                           clusters=("c",), shared=(), control_plane=True)  # fmt: skip
    made = amended(target, released_at=2.0, waiting="")
    assert made == replace(target, released_at=2.0, waiting="")
    assert hash(made) == hash(replace(target, released_at=2.0, waiting=""))
    assert target.released_at is None  # the original is left as it was
    with pytest.raises(TypeError, match="RolloutTarget has no field releasedAt"):
        amended(target, releasedAt=2.0)


def test_report_bodies_keep_what_an_agent_sent_whole(store: Store) -> None:
    """JSON columns are written by orjson, and by the standard library where orjson refuses
    (an integer past 64 bits, from an agent): either way the body reads back as sent."""
    bodies = [
        {"scans": [{"passed": 2**70, "failed": -(2**64)}], "name": "ü \"x\"", "ok": True},
        {"nested": {"1": [1.5, None, False]}, "empty": {}},
    ]
    records = [ReportRecord(f"a{i}", 1.0, None, True, body) for i, body in enumerate(bodies)]
    with store.write() as tx:
        tx.reports.put_many(records)
    with store.read() as tx:
        assert tx.reports.all() == records
        assert tx.reports.all()[0].body["scans"][0]["passed"] == 2**70


def test_agents_are_found_by_token_hash_and_re_registration_replaces_it(store: Store) -> None:
    agent = AgentRecord("a1", "host", "10.0.0.1", "amd64", "0.1", 1.0, 1.0)
    with store.write() as tx:
        tx.agents.put(agent, token_hash="h1")
    with store.write() as tx:
        tx.agents.put(replace(agent, hostname="host2"), token_hash="h2")
        tx.agents.touch("a1", at=9.0)
    with store.read() as tx:
        assert tx.agents.by_token_hash("h1") is None
        found = tx.agents.by_token_hash("h2")
        assert found == (replace(agent, hostname="host2", last_seen=9.0), "h2")
        assert [a.appliance for a in tx.agents.all()] == ["a1"]
    with pytest.raises(StoreConflict), store.write() as tx:
        tx.agents.put(replace(agent, appliance="a2"), token_hash="h2")


def test_reports_keep_the_latest_and_healthy_digests(store: Store) -> None:
    with store.write() as tx:
        tx.reports.put(ReportRecord("a1", 1.0, "sha256:1", True, {"health": "healthy"}))
        tx.reports.put(ReportRecord("a1", 2.0, "sha256:2", False, {"health": "unhealthy"}))
        tx.reports.mark_healthy("a1", "sha256:1", at=1.0)
        tx.reports.mark_healthy("a1", "sha256:1", at=5.0)
    with store.read() as tx:
        assert tx.reports.get("a1") == ReportRecord(
            "a1", 2.0, "sha256:2", False, {"health": "unhealthy"}
        )
        assert set(tx.reports.for_appliances(["a1", "a2"])) == {"a1"}
        pairs = tx.reports.healthy_pairs([("a1", "sha256:1"), ("a1", "sha256:2")])
        assert pairs == {("a1", "sha256:1")}


def test_events_from_agents_are_stored_once_per_key_and_kept_to_a_quota(store: Store) -> None:
    event = EventRecord(
        at=1.0, level="info", kind="agent", message="m", site="s1", appliance="a1", key="k1"
    )
    with store.write() as tx:
        tx.events.add([event, event, replace(event, key=None), replace(event, key=None)])
    with store.read() as tx:
        assert len(tx.events.recent(site="s1")) == 3
    with store.write() as tx:
        step = EventRecord(at=1.0, level="info", kind="site-done", message="done", site="s1")
        tx.events.add([step])
        tx.events.add(replace(event, key=f"n{i}", message=str(i)) for i in range(300))
    with store.read() as tx:
        mine = tx.events.recent(appliance="a1", limit=1000)
        assert len(mine) == RETENTION.appliance
        assert [e.message for e in mine[:3]] == ["299", "298", "297"]
        # the appliance's flood dropped its own oldest events, never the site's history
        assert "done" in [e.message for e in tx.events.recent(site="s1", limit=1000)]


def test_a_wave_opening_to_many_sites_trims_each_one_to_its_own_quota(store: Store) -> None:
    """One add covers many partitions (a wave opening): each is trimmed to its retention,
    by the newest events, and no other partition loses one."""
    keep = Retention(appliance=2, site=3)
    step = EventRecord(at=1.0, level="info", kind="site-rolling", message="", site="s0")
    reported = EventRecord(at=1.0, level="info", kind="agent", message="", appliance="a0")
    with store.write() as tx:
        events = Events(tx.connection, keep)
        events.add([replace(step, site="quiet", message="quiet 0")])
        for n in range(5):
            events.add(
                [replace(step, site=f"s{i}", message=f"s{i} {n}") for i in range(4)]
                + [replace(reported, appliance=f"a{i}", message=f"a{i} {n}") for i in range(3)]
            )
    with store.read() as tx:
        for i in range(4):
            kept = [e.message for e in tx.events.recent(site=f"s{i}", limit=100)]
            assert kept == [f"s{i} 4", f"s{i} 3", f"s{i} 2"]
        for i in range(3):
            kept = [e.message for e in tx.events.recent(appliance=f"a{i}", limit=100)]
            assert kept == [f"a{i} 4", f"a{i} 3"]
        assert [e.message for e in tx.events.recent(site="quiet")] == ["quiet 0"]


def test_concurrent_exclusive_writers_do_not_fail(store: Store) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(15):
                with store.write(exclusive=True) as tx:
                    latest = tx.revisions.latest()
                    tx.revisions.add(RevisionRecord(f"{n:02d}{i:038d}", "good", (), float(i)))
                    assert latest is None or latest.seq >= 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.read() as tx:
        assert tx.revisions.counts() == {"good": 60}


def test_a_writer_that_begins_again_at_once_does_not_starve_the_others(store: Store) -> None:
    """The rollout ticks back to back while agents report: a report waits for the
    transaction in progress, not for the ticks to stop (SQLite's busy handler polls, and
    lost every time to a writer that began again at once)."""
    stop = threading.Event()
    busy = threading.Event()
    ticks = 0

    def ticking() -> None:
        nonlocal ticks
        while not stop.is_set():
            with store.write(exclusive=True) as tx:
                tx.revisions.latest()
                time.sleep(0.02)  # a tick's work, the lock held
                ticks += 1
            busy.set()

    ticker = threading.Thread(target=ticking)
    ticker.start()
    try:
        assert busy.wait(10)
        waited = []
        for n in range(5):
            started = time.monotonic()
            with store.write() as tx:
                tx.revisions.add(RevisionRecord(f"{n:040d}", "good", (), float(n)))
            waited.append(time.monotonic() - started)
    finally:
        stop.set()
        ticker.join()
    assert max(waited) < 1.0, (waited, ticks)  # a few of the ticker's transactions at most


def test_a_rollout_continues_in_a_new_process_on_the_same_database(store_url: str) -> None:
    clock = ManualClock()
    sites = [site("grocery-1", ring="canary"), site("store-2")]
    first = RolloutService(store=Store(store_url), clock=clock)
    rel = release(revision("r1"), sites, soak_seconds=3600)
    assert first.record_release(rel)
    new = digests(rel)
    report = StatusReport.model_validate(
        {
            "appliedDigest": new["grocery-1-edge"],
            "health": "healthy",
            "clusters": [{"name": "grocery-1-store", "phase": "Running"}],
        }
    )
    first.accept_report("grocery-1-edge", report)
    first.store.close()
    # "restart": another service over the same database, the loop hands the release again
    second = RolloutService(store=Store(store_url), clock=clock)
    assert not second.record_release(rel)
    clock.advance(hours=1, seconds=1)
    second.accept_report("grocery-1-edge", report)
    with second.store.read() as tx:
        served = {a.appliance: a.served_digest for a in tx.assignments.all()}
        rollouts = [tx.rollouts.get(rel.revision)]
        assert tx.revisions.counts() == {"good": 1}
    assert served == new
    assert [r.wave for r in rollouts if r] == [1]
    second.store.close()


def test_an_unreachable_database_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable):
        Store(f"sqlite:///{tmp_path}/missing/folder/x.db")
    # without the driver installed this is a StoreError naming psycopg instead
    expected = StoreUnavailable if importlib.util.find_spec("psycopg") else StoreError
    with pytest.raises(expected):
        Store(f"postgresql+psycopg://nobody@/nothing?host={tmp_path}&connect_timeout=1")
    with pytest.raises(StoreError):
        Store("mysql://localhost/db")
    with pytest.raises(StoreError):
        Store("not a url")
    with pytest.raises(StoreError, match="in-memory"):
        Store("sqlite://")


def test_sqlite_writers_leave_copying_the_log_back_to_a_thread_of_its_own(tmp_path: Path) -> None:
    """A release's commit returns without copying its pages back into the database file
    (seconds for a fleet-wide release); the store's checkpointer does it a moment later."""
    path = tmp_path / "fleet.db"
    store = Store(f"sqlite:///{path}")
    try:
        assert store.checkpoints is not None
        before = path.stat().st_size
        big = {f"sha256:{i:064x}": json.dumps({"n": i, "pad": "x" * 16_000}) for i in range(600)}
        with store.write() as tx:
            tx.documents.put(big, at=1.0)  # some 10 MB: ten times SQLite's default threshold
        assert path.stat().st_size - before < 1 << 20  # still in the log
        deadline = time.monotonic() + 10
        while store.checkpoints.copied == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.checkpoints.copied >= 2000
        assert path.stat().st_size - before > 9 << 20
        with store.read() as tx:
            assert len(tx.documents.get_many(set(big))) == 600
    finally:
        store.close()
