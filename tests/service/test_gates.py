"""Table-driven checks of the gate arithmetic (maintenance windows in site time zones,
failure allowances), and releases the service must refuse or handle as a whole."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from agent.contract import MaintenanceWindow, StatusReport
from reconciler.planning.waves import allowance
from reconciler.planning.windows import next_opening, window_open
from reconciler.rollout import InvalidRelease
from reconciler.rollout import service as rollout_service
from reconciler.store import ChangeRecord

from .conftest import Harness
from .fleets import digests, release, revision, site

WEEKNIGHTS = MaintenanceWindow(
    days=["mon", "tue", "wed", "thu", "fri"], start="23:30", duration="5h"
)
SUNDAY = MaintenanceWindow(days=["sun"], start="00:00", duration="8h")
SAT_NIGHT = MaintenanceWindow(days=["sat"], start="01:00", duration="4h")


@pytest.mark.parametrize(
    "windows,timezone,at,open_",
    [
        # New York is UTC-5 in January: Monday 23:30 local is Tuesday 04:30 UTC
        ([WEEKNIGHTS], "America/New_York", "2025-01-07T04:29", False),
        ([WEEKNIGHTS], "America/New_York", "2025-01-07T04:30", True),
        # past midnight, Tuesday 04:29 local, still Monday's window
        ([WEEKNIGHTS], "America/New_York", "2025-01-07T09:29", True),
        ([WEEKNIGHTS], "America/New_York", "2025-01-07T09:30", False),
        # Friday's window runs into Saturday morning; none opens on Saturday night
        ([WEEKNIGHTS], "America/New_York", "2025-01-11T06:00", True),
        ([WEEKNIGHTS], "America/New_York", "2025-01-12T04:40", False),
        ([WEEKNIGHTS, SUNDAY], "America/New_York", "2025-01-12T05:00", True),
        # Berlin in summer is UTC+2: Saturday 01:00 there is Friday 23:00 UTC
        ([SAT_NIGHT], "Europe/Berlin", "2025-07-04T23:00", True),
        ([SAT_NIGHT], "Europe/Berlin", "2025-07-04T22:59", False),
        # the night US clocks spring forward (2025-03-09): a 4h window lasts 4 real hours
        (
            [MaintenanceWindow(days=["sun"], start="01:00", duration="4h")],
            "America/Chicago",
            "2025-03-09T10:59",
            True,
        ),
        (
            [MaintenanceWindow(days=["sun"], start="01:00", duration="4h")],
            "America/Chicago",
            "2025-03-09T11:00",
            False,
        ),
        ([], "UTC", "2025-01-01T00:00", False),
    ],
)
def test_maintenance_windows(
    windows: list[MaintenanceWindow], timezone: str, at: str, open_: bool
) -> None:
    when = datetime.fromisoformat(at).replace(tzinfo=UTC)
    assert window_open(windows, timezone, when) is open_


def test_next_window_opening_is_in_the_site_time_zone() -> None:
    at = datetime(2025, 1, 8, 12, 0, tzinfo=UTC)  # Wednesday
    opening = next_opening([SAT_NIGHT], "Asia/Tokyo", at)
    assert opening == datetime(2025, 1, 10, 16, 0, tzinfo=UTC)  # Sat 01:00 in Tokyo
    assert next_opening([], "UTC", at) is None


@pytest.mark.parametrize(
    "max_failures,sites,allowed",
    [
        ("0", 5, 0),
        ("2", 5, 2),
        ("10%", 1, 0),
        ("10%", 9, 0),
        ("10%", 10, 1),
        ("50%", 3, 1),
        ("100%", 4, 4),
    ],
)
def test_failure_allowance(max_failures: str, sites: int, allowed: int) -> None:
    assert allowance(max_failures, sites) == allowed


def test_an_inconsistent_release_is_refused_whole(server: Harness) -> None:
    good = release(revision("r1"), [site("grocery-1"), site("store-2")])
    state = good.sites["store-2"].states["store-2-edge"]
    tampered = replace(
        good,
        sites={
            **good.sites,
            "store-2": replace(
                good.sites["store-2"],
                states={"store-2-edge": state.model_copy(update={"site": "elsewhere"})},
            ),
        },
    )
    with pytest.raises(InvalidRelease, match="store-2/store-2-edge"):
        server.rollout.record_release(tampered)
    forged = replace(
        good,
        sites={
            **good.sites,
            "store-2": replace(
                good.sites["store-2"],
                states={"store-2-edge": state.model_copy(update={"digest": "sha256:" + "0" * 64})},
            ),
        },
    )
    with pytest.raises(InvalidRelease, match="digest does not match"):
        server.rollout.record_release(forged)
    # the documents rendering hands over with a release are checked the same way
    handed = replace(good, documents={state.digest: state.model_dump_json()})
    with pytest.raises(InvalidRelease, match="store-2/store-2-edge: digest does not match"):
        server.rollout.record_release(handed)
    assert server.fleet()["revision"] is None


def test_an_appliance_removed_from_the_repository_gets_an_empty_state_then_none(
    server: Harness,
) -> None:
    two = site("store-2", "s-a", "s-b", control_plane=["s-a"])
    first = release(revision("r1"), [two])
    server.rollout.record_release(first)
    removed = server.agent("s-b")
    assert removed.digest() == digests(first)["s-b"]
    one = site("store-2", "s-a")
    server.rollout.record_release(release(revision("r2"), [one]))
    emptied = removed.desired()
    assert emptied.status_code == 200
    assert emptied.json()["clusters"] == []
    assert [(d["id"], d["status"]) for d in server.fleet()["discovered"]] == [
        ("s-b", "Decommissioning")
    ]
    # once it reports no node left its token is revoked
    answer = removed.http.post(
        "/v1/status",
        json={"appliedDigest": emptied.json()["digest"], "health": "healthy"},
        headers=removed.auth,
    )
    assert answer.status_code == 202
    assert removed.desired().status_code == 401
    assert server.fleet()["discovered"] == []


def test_reports_arriving_together_each_see_their_effect(server: Harness) -> None:
    canaries = [site(f"canary-{i}", ring="canary") for i in range(12)]
    later = site("store-2")
    specs = [*canaries, later]
    first = release(revision("r1"), specs)
    agents = {a: server.agent(a) for s in specs for a in s.appliances}
    server.rollout.record_release(first)
    for name, agent in agents.items():
        if name != "store-2-edge":
            agent.apply()
    agents["store-2-edge"].apply()
    second = release(revision("r2"), specs, manifest="v2")
    server.rollout.record_release(second)
    threads = [threading.Thread(target=agents[s.appliances[0]].apply) for s in canaries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # every canary report has returned: the last one's tick has opened the next wave
    assert agents["store-2-edge"].digest() == digests(second)["store-2-edge"]


def test_reports_written_in_one_batch_count_in_the_order_they_came(server: Harness) -> None:
    """The batch writer (what reports arriving together go through) with two reports of one
    appliance in one batch: the later is the one kept, and its streak follows both."""
    spec = site("store-2")
    first = release(revision("r1"), [spec])
    server.agent("store-2-edge")
    server.rollout.record_release(first)
    digest = digests(first)["store-2-edge"]
    healthy = StatusReport(appliedDigest=digest, health="healthy")
    sick = StatusReport(appliedDigest=digest, health="unhealthy")
    written = server.rollout._write_reports([("store-2-edge", healthy), ("store-2-edge", sick)])
    assert written == [([], True), ([], True)]  # the first wave's site has not settled
    with server.store.read() as tx:
        kept = tx.reports.get("store-2-edge")
        streak = tx.reports.streaks(["store-2-edge"])["store-2-edge"]
        ran = tx.reports.healthy_pairs([("store-2-edge", digest)])
    assert kept is not None and kept.healthy is False
    assert streak.digest == digest and streak.since is None  # the later report broke the run
    assert ran == {("store-2-edge", digest)}  # it did run healthy, once
    server.rollout._write_reports([("store-2-edge", sick), ("store-2-edge", healthy)])
    with server.store.read() as tx:
        streak = tx.reports.streaks(["store-2-edge"])["store-2-edge"]
    assert streak.since == server.clock().timestamp()


def test_ticks_wait_while_a_revision_renders_then_one_runs(server: Harness) -> None:
    """What the reconcile loop holds the ticks for: a tick asked for meanwhile (by a report,
    by the timer) does nothing until the block ends, then one runs."""
    canary, later = site("canary-1", ring="canary"), site("store-2")
    first = release(revision("r1"), [canary, later])
    agents = {a: server.agent(a) for s in (canary, later) for a in s.appliances}
    server.rollout.record_release(first)
    with server.rollout.deferring_ticks():
        agents["canary-1-edge"].apply()  # the canary reports healthy: its wave is done
        server.rollout.tick()
        assert agents["store-2-edge"].digest() is None  # the next wave waits for a tick
    assert agents["store-2-edge"].digest() == digests(first)["store-2-edge"]


@pytest.mark.parametrize("changes,held", [(1, False), (2, True)])
def test_ticks_wait_while_a_wave_is_handed_on(
    server: Harness, monkeypatch: pytest.MonkeyPatch, changes: int, held: bool
) -> None:
    """A tick asked for while a wave's worth of changes (a wake batch or more) is handed on
    to the waiting agents does nothing until that is done, then one runs: each tick reads
    every site and target of the rollout, and beside a wave being woken it took the
    interpreter from the agents. Fewer changes hold no tick."""
    monkeypatch.setattr(rollout_service, "WAKE_BATCH", 2)
    canary, later = site("canary-1", ring="canary"), site("store-2")
    first = release(revision("r1"), [canary, later])
    server.rollout.record_release(first)
    state = first.sites["canary-1"].states["canary-1-edge"]
    running = [{"name": c.name, "phase": "Running"} for c in state.clusters]
    healthy = StatusReport.model_validate(
        {"appliedDigest": state.digest, "health": "healthy", "clusters": running}
    )
    server.rollout._write_reports([("canary-1-edge", healthy)])  # written, no tick yet
    asked: list[bool] = []
    served_meanwhile: list[str | None] = []

    def a_report_asks_for_a_tick(batch: object) -> None:
        if asked:
            return
        asked.append(True)
        server.rollout.tick()
        with server.store.read() as tx:
            assignment = tx.assignments.get("store-2-edge")
            served_meanwhile.append(assignment.served_digest if assignment else None)

    server.rollout.notifier.listen(a_report_asks_for_a_tick)
    server.rollout._publish([ChangeRecord("served", "canary-1-edge", at=0.0)] * changes)
    wanted = digests(first)["store-2-edge"]
    assert served_meanwhile == [None if held else wanted]
    with server.store.read() as tx:
        assignment = tx.assignments.get("store-2-edge")
    assert assignment is not None and assignment.served_digest == wanted  # then one ran


def test_reports_wait_while_a_wave_is_handed_on(
    server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A status report that comes in while a wave's worth of changes is handed on to the
    waiting agents is written once that is done (the agents still to be woken go first)."""
    monkeypatch.setattr(rollout_service, "WAKE_BATCH", 2)
    canary = site("canary-1", ring="canary")
    first = release(revision("r1"), [canary, site("store-2")])
    server.rollout.record_release(first)
    digest = digests(first)["canary-1-edge"]
    report = StatusReport(appliedDigest=digest, health="healthy")
    seen: list[tuple[bool, bool]] = []
    pending: list[Future[bool]] = []

    def a_report_comes_in(batch: object) -> None:
        if pending:
            return
        pending.append(server.rollout.report_later("canary-1-edge", report))
        time.sleep(0.5)
        with server.store.read() as tx:
            seen.append((pending[0].done(), tx.reports.get("canary-1-edge") is not None))

    server.rollout.notifier.listen(a_report_comes_in)
    server.rollout._publish([ChangeRecord("served", "canary-1-edge", at=0.0)] * 2)
    assert seen == [(False, False)]  # held while the wave was handed on
    assert pending[0].result(5) is True  # then written
    with server.store.read() as tx:
        kept = tx.reports.get("canary-1-edge")
    assert kept is not None and kept.healthy


@pytest.mark.parametrize("again", [False, True])
def test_a_release_covers_the_ticks_asked_for_while_it_rendered(
    server: Harness, monkeypatch: pytest.MonkeyPatch, again: bool
) -> None:
    """The release a render ends with steps the rollout with every report written before
    it: the ticks asked for meanwhile do not run again after it (over ten thousand sites
    one took a second). A revision recorded before records nothing: they run."""
    specs = [site("canary-1", ring="canary"), site("store-2")]
    first = release(revision("r1"), specs)
    server.rollout.record_release(first)
    second = first if again else release(revision("r2"), specs, manifest="v2")
    ticks: list[str] = []
    real = server.rollout.tick

    def counted() -> None:
        ticks.append("tick")
        real()

    monkeypatch.setattr(server.rollout, "tick", counted)
    with server.rollout.deferring_ticks():
        server.rollout.tick()  # a report asks for a tick while the revision renders
        assert server.rollout.record_release(second) is not again
    assert ticks == (["tick", "tick"] if again else ["tick"])


def test_reports_and_ticks_wait_for_a_waves_agents_to_be_answered(
    server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a wave is woken, its reports and ticks wait until its agents were answered:
    woken is not yet answered, and the first agents' reports came in while the last were
    still to be served."""
    monkeypatch.setattr(rollout_service, "WAKE_BATCH", 2)
    canary = site("canary-1", ring="canary")
    first = release(revision("r1"), [canary, site("store-2")])
    server.rollout.record_release(first)
    report = StatusReport(appliedDigest=digests(first)["canary-1-edge"], health="healthy")
    asked: list[float] = []
    seen: list[tuple[bool, bool]] = []
    pending: list[Future[bool]] = []

    def answering(timeout: float) -> bool:  # the woken agents are being answered
        asked.append(timeout)
        pending.append(server.rollout.report_later("canary-1-edge", report))
        time.sleep(0.5)
        with server.store.read() as tx:
            seen.append((pending[0].done(), tx.reports.get("canary-1-edge") is not None))
        return True

    monkeypatch.setattr(server.rollout.notifier, "answered", answering)
    server.rollout._publish([ChangeRecord("served", "canary-1-edge", at=0.0)] * 2)
    assert asked == [rollout_service.ANSWERS_AWAITED]
    assert seen == [(False, False)]  # held until they were answered
    assert pending[0].result(5) is True


def test_documents_ahead_wait_while_a_wave_is_handed_on(
    server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hand-over makes what is not made ahead yet: making more ahead meanwhile only
    takes the interpreter from it (and from the agents it wakes)."""
    monkeypatch.setattr(rollout_service, "WAKE_BATCH", 2)
    first = release(revision("r1"), [site("canary-1", ring="canary"), site("store-2")])
    server.rollout.record_release(first)
    held: list[bool] = []
    server.rollout.notifier.listen(
        lambda _batch: held.append(not server.rollout.notifier.undecided(0.0))
    )
    server.rollout._publish([ChangeRecord("served", "canary-1-edge", at=0.0)])
    server.rollout._publish([ChangeRecord("served", "canary-1-edge", at=0.0)] * 2)
    assert held == [False, True]  # a wave's worth only
