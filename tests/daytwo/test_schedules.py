"""Schedules under a controlled clock: they fire at the site's local time across
daylight-saving changes, follow the desired state, survive a restart, run a missed run once,
and a patch due while the maintenance window is closed waits for the window."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.contract import (
    ClusterState,
    MaintenanceWindow,
    Node,
    Pool,
    Schedule,
    schedule_from,
    seal,
)
from agent.daytwo.operations import Operations
from agent.daytwo.records import RunState
from agent.daytwo.schedules.scheduler import (
    Fired,
    FiredState,
    Occurrence,
    Postponed,
    Scheduler,
    ScheduleSettings,
)
from agent.drivers.nodes import Exec, NodeRef
from tests.daytwo.clock import ControlledClock

NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")


# what each kind of schedule needs at the least; the runner here never reads it
PARAMETERS: dict[str, dict[str, object]] = {
    "backup": {"location": {"name": "nas", "provider": "file", "path": "/srv/backups"}},
    "scan": {"scan": "configuration", "tool": "kube-bench"},
    "patch": {},
}


def schedule(cron: str, *, name: str = "backup", kind: str = "backup", tz: str = "America/New_York",
             **parameters: object) -> Schedule:  # fmt: skip
    return schedule_from({"kind": kind, "name": name, "cron": cron, "timezone": tz,
                          "parameters": {**PARAMETERS[kind], **parameters}})  # fmt: skip


def cluster(name: str, *schedules: Schedule, windows: Sequence[MaintenanceWindow] = (),
            tz: str = "America/New_York") -> ClusterState:  # fmt: skip
    nodes = [
        Node(
            name=f"{name}-{pool}-1",
            pool=pool,
            role=role,
            appliance="app",
            workerCapable=True,
            image=None,
            userData="",
        )  # fmt: skip
        for pool, role in (("workers", "worker"), ("main", "control-plane"))
    ]
    return ClusterState(
        name=name,
        mode="containerized",
        packs=[],
        pools=[
            Pool(name="workers", controlPlane=False, size=1, updateStrategy="contract-first"),
            Pool(name="main", controlPlane=True, size=1, updateStrategy="expand-first"),
        ],
        nodes=nodes,
        manifests=[],
        schedules=list(schedules),
        maintenanceWindows=list(windows),
        timezone=tz,
    )


def desired(*clusters: ClusterState):  # type: ignore[no-untyped-def]
    return seal(appliance="app", site="s", revision="r1", clusters=list(clusters))


class Recorder:
    def __init__(self) -> None:
        self.runs: list[Occurrence] = []

    def __call__(self, occurrence: Occurrence) -> Postponed | None:
        self.runs.append(occurrence)
        return None


def open_scheduler(tmp_path: Path, clock: ControlledClock, runner: object,
                   **settings: object) -> Scheduler:  # fmt: skip
    return Scheduler(
        data_dir=tmp_path / "data", clock=clock, runner=runner,  # type: ignore[arg-type]
        settings=ScheduleSettings(**settings),  # type: ignore[arg-type]
    )  # fmt: skip


def walk(scheduler: Scheduler, clock: ControlledClock, until: datetime,
         step: timedelta = timedelta(minutes=15)) -> list[Fired]:  # fmt: skip
    fired: list[Fired] = []
    while clock.now() < until:
        clock.advance(step)
        fired.extend(scheduler.run_due())
    return fired


def test_a_daily_run_keeps_its_local_time_when_clocks_go_forward(tmp_path: Path) -> None:
    clock = ControlledClock(datetime(2025, 3, 6, 12, tzinfo=UTC))
    runs = Recorder()
    with open_scheduler(tmp_path, clock, runs) as scheduler:
        scheduler.sync(desired(cluster("pos", schedule("0 9 * * *"))))
        fired = walk(scheduler, clock, datetime(2025, 3, 12, 12, tzinfo=UTC))

    assert [f.state for f in fired] == [FiredState.RAN] * 6
    local = [r.due for r in runs.runs]
    assert [(d.day, d.hour, d.minute) for d in local] == [(day, 9, 0) for day in range(6, 12)]
    # 09:00 EST is 14:00 UTC; from Sunday 9 March 09:00 EDT is 13:00 UTC
    assert [d.astimezone(UTC).hour for d in local] == [14, 14, 14, 13, 13, 13]
    assert all(f.at - f.occurrence.due < timedelta(minutes=15) for f in fired)


def test_a_local_time_that_comes_twice_when_clocks_go_back_runs_once(tmp_path: Path) -> None:
    clock = ControlledClock(datetime(2025, 10, 31, 12, tzinfo=UTC))
    runs = Recorder()
    with open_scheduler(tmp_path, clock, runs) as scheduler:
        scheduler.sync(desired(cluster("pos", schedule("30 1 * * *"))))
        walk(scheduler, clock, datetime(2025, 11, 4, 12, tzinfo=UTC), step=timedelta(minutes=5))

    assert [r.due.astimezone(UTC) for r in runs.runs] == [
        datetime(2025, 11, 1, 5, 30, tzinfo=UTC),  # 01:30 EDT
        datetime(2025, 11, 2, 5, 30, tzinfo=UTC),  # 01:30 EDT; 01:30 EST comes an hour later
        datetime(2025, 11, 3, 6, 30, tzinfo=UTC),  # 01:30 EST
        datetime(2025, 11, 4, 6, 30, tzinfo=UTC),
    ]


def test_a_local_time_that_clocks_skip_runs_when_they_skip_it(tmp_path: Path) -> None:
    clock = ControlledClock(datetime(2025, 3, 7, 12, tzinfo=UTC))
    runs = Recorder()
    with open_scheduler(tmp_path, clock, runs) as scheduler:
        scheduler.sync(desired(cluster("pos", schedule("30 2 * * *"))))
        walk(scheduler, clock, datetime(2025, 3, 10, 12, tzinfo=UTC), step=timedelta(minutes=5))

    assert [r.due.astimezone(NEW_YORK).isoformat() for r in runs.runs] == [
        "2025-03-08T02:30:00-05:00",
        "2025-03-09T03:00:00-04:00",  # 02:30 does not exist that night: at 03:00 EDT
        "2025-03-10T02:30:00-04:00",
    ]


def test_a_run_missed_while_the_agent_was_down_runs_once_when_it_starts(tmp_path: Path) -> None:
    clock = ControlledClock(datetime(2025, 6, 2, 12, tzinfo=UTC))
    runs = Recorder()
    with open_scheduler(tmp_path, clock, runs) as scheduler:
        scheduler.sync(desired(cluster("pos", schedule("0 */6 * * *"))))
        assert scheduler.run_due() == ()

    # the agent is down for 20 hours, from 08:00 local: the runs of 12:00, 18:00, 00:00 are missed
    clock.advance(timedelta(hours=20))
    with open_scheduler(tmp_path, clock, runs) as scheduler:
        fired = scheduler.run_due()
        again = scheduler.run_due()
        (planned,) = scheduler.planned()

    assert [(f.state, f.occurrence.missed) for f in fired] == [(FiredState.RAN, 2)]
    assert len(runs.runs) == 1
    assert runs.runs[0].due == datetime(2025, 6, 3, 0, tzinfo=NEW_YORK)  # the latest one
    assert again == ()
    assert planned.next_run == datetime(2025, 6, 3, 6, tzinfo=NEW_YORK)


def test_a_run_missed_by_more_than_the_grace_time_is_reported_not_run(tmp_path: Path) -> None:
    clock = ControlledClock(datetime(2025, 6, 2, 12, tzinfo=UTC))
    runs = Recorder()
    with open_scheduler(tmp_path, clock, runs, misfire_grace=timedelta(hours=1)) as scheduler:
        scheduler.sync(desired(cluster("pos", schedule("0 23 * * *"))))
        clock.set(datetime(2025, 6, 3, 2, 0, tzinfo=NEW_YORK))  # three hours late
        fired = scheduler.run_due()
        (planned,) = scheduler.planned()

    assert [f.state for f in fired] == [FiredState.MISSED]
    assert runs.runs == []
    assert planned.next_run == datetime(2025, 6, 3, 23, tzinfo=NEW_YORK)


def test_jobs_follow_the_desired_state(tmp_path: Path) -> None:
    clock = ControlledClock(datetime(2025, 6, 2, 12, tzinfo=UTC))
    with open_scheduler(tmp_path, clock, Recorder()) as scheduler:
        first = scheduler.sync(
            desired(
                cluster(
                    "pos",
                    schedule("0 23 * * *", prefix="a"),
                    schedule("0 1 * * tue", kind="patch", name="os-patch"),
                ),
                cluster("kiosk", schedule("0 4 * * *")),
            )  # fmt: skip
        )
        before = {p.job: p.next_run for p in scheduler.planned()}
        second = scheduler.sync(
            desired(
                cluster(
                    "pos",
                    schedule("0 23 * * *", prefix="b"),
                    schedule("0 3 * * tue", kind="patch", name="os-patch"),
                    schedule("0 2 * * wed", kind="scan", name="scan-configuration"),
                ),
            )  # fmt: skip
        )
        after = {p.job: p.next_run for p in scheduler.planned()}
        third = scheduler.sync(desired(cluster("pos", schedule("0 23 * * *", prefix="b"))))

    assert first.added == ("kiosk/backup", "pos/backup", "pos/os-patch")
    assert second.added == ("pos/scan-configuration",)
    assert second.changed == ("pos/backup", "pos/os-patch")
    assert second.removed == ("kiosk/backup",)
    assert after["pos/backup"] == before["pos/backup"]  # parameters only: same next run
    assert after["pos/os-patch"] == datetime(2025, 6, 3, 3, tzinfo=NEW_YORK)  # Tuesday 03:00
    assert third.removed == ("pos/os-patch", "pos/scan-configuration")
    assert third.added == third.changed == ()


class FakeHost:
    """Nodes that answer patch commands at once, except that an upgrade takes ``upgrade``."""

    def __init__(self, clock: ControlledClock, upgrade: timedelta = timedelta(minutes=5)):
        self.clock = clock
        self.upgrade = upgrade
        self.upgraded: list[tuple[str, datetime]] = []

    def cluster_nodes(self, cluster: ClusterState) -> tuple[NodeRef, ...]:
        ordered = sorted(cluster.nodes, key=lambda n: n.role != "control-plane")
        return tuple(NodeRef(n.name, n.pool, n.role, f"{n.name}-c", "img") for n in ordered)

    def run(self, node: NodeRef, command: Sequence[str], *, timeout: float) -> Exec:
        if command[0] == "upgrade":
            self.upgraded.append((node.node, self.clock.now()))
            self.clock.advance(self.upgrade)
        return Exec(0, "3.19.1\n")

    def exists(self, node: NodeRef, path: str) -> bool:
        return False

    def restart(self, node: NodeRef, *, timeout: float) -> None:
        raise AssertionError("no reboot was asked for")


def patching(tmp_path: Path, clock: ControlledClock, host: FakeHost, state: object) -> Operations:
    from agent.daytwo.operations import DayTwoSettings
    from agent.daytwo.patching import PatchSettings

    return Operations(
        data_dir=tmp_path / "data", host=host, volumes=None, clock=clock, environ={},  # type: ignore[arg-type]
        settings=DayTwoSettings(patch=PatchSettings(command=("upgrade",), version_command=("v",))),
        current_state=lambda: state,  # type: ignore[arg-type,return-value]
    )  # fmt: skip


def test_a_patch_due_while_the_window_is_closed_runs_when_it_opens(tmp_path: Path) -> None:
    windows = [MaintenanceWindow(days=["sat", "sun"], start="01:00", duration="4h")]
    patch = schedule("0 12 * * wed", kind="patch", name="os-patch", tz="America/Chicago",
                     onBoot=False, rebootIfRequired=True)  # fmt: skip
    state = desired(cluster("clinic", patch, windows=windows, tz="America/Chicago"))
    clock = ControlledClock(datetime(2025, 6, 2, 12, tzinfo=UTC))  # a Monday
    host = FakeHost(clock)
    operations = patching(tmp_path, clock, host, state)
    with open_scheduler(tmp_path, clock, operations.scheduled) as scheduler:
        scheduler.sync(state)
        clock.set(datetime(2025, 6, 4, 12, tzinfo=CHICAGO))  # Wednesday noon: window closed
        (postponed,) = scheduler.run_due()
        planned = {p.job: p.next_run for p in scheduler.planned()}

    assert postponed.state is FiredState.POSTPONED
    assert postponed.until == datetime(2025, 6, 7, 1, tzinfo=CHICAGO)  # Saturday 01:00
    assert host.upgraded == []
    assert planned["clinic/os-patch@postponed"] == datetime(2025, 6, 7, 1, tzinfo=CHICAGO)
    assert planned["clinic/os-patch"] == datetime(2025, 6, 11, 12, tzinfo=CHICAGO)

    # the agent restarts in between: the postponed run is kept
    with open_scheduler(tmp_path, clock, operations.scheduled) as scheduler:
        assert walk(scheduler, clock, datetime(2025, 6, 7, 0, 45, tzinfo=CHICAGO)) == []
        fired = walk(scheduler, clock, datetime(2025, 6, 7, 1, 15, tzinfo=CHICAGO))
        remaining = [p.job for p in scheduler.planned()]

    assert [(f.state, f.occurrence.postponed) for f in fired] == [(FiredState.RAN, True)]
    assert [node for node, _ in host.upgraded] == ["clinic-main-1", "clinic-workers-1"]
    assert host.upgraded[0][1] == datetime(2025, 6, 7, 1, tzinfo=CHICAGO)
    assert remaining == ["clinic/os-patch"]
    (status,) = operations.status(state)
    assert {(p.node, p.state, p.version) for p in status.patches} == {
        ("clinic-main-1", RunState.DONE, "3.19.1"),
        ("clinic-workers-1", RunState.DONE, "3.19.1"),
    }


def test_a_patch_run_that_outlasts_its_window_leaves_the_rest_for_the_next(tmp_path: Path) -> None:
    windows = [MaintenanceWindow(days=["sat", "sun"], start="01:00", duration="30m")]
    patch = schedule("0 1 * * sat", kind="patch", name="os-patch", tz="America/Chicago",
                     onBoot=False, rebootIfRequired=False)  # fmt: skip
    state = desired(cluster("clinic", patch, windows=windows, tz="America/Chicago"))
    clock = ControlledClock(datetime(2025, 6, 6, 12, tzinfo=UTC))
    host = FakeHost(clock, upgrade=timedelta(minutes=40))
    operations = patching(tmp_path, clock, host, state)
    with open_scheduler(tmp_path, clock, operations.scheduled) as scheduler:
        scheduler.sync(state)
        first = walk(scheduler, clock, datetime(2025, 6, 7, 1, 5, tzinfo=CHICAGO))
        second = walk(scheduler, clock, datetime(2025, 6, 8, 1, 5, tzinfo=CHICAGO))

    assert [f.state for f in first] == [FiredState.POSTPONED]
    assert first[0].until == datetime(2025, 6, 8, 1, tzinfo=CHICAGO)  # Sunday's window
    assert [f.state for f in second] == [FiredState.RAN]
    assert [(n, at.astimezone(CHICAGO).day) for n, at in host.upgraded] == [
        ("clinic-main-1", 7),
        ("clinic-workers-1", 8),  # the control plane was done before the window closed
    ]


def test_the_background_thread_runs_what_is_due(tmp_path: Path) -> None:
    clock = ControlledClock(datetime(2025, 6, 2, 12, tzinfo=UTC))
    ran = threading.Event()

    def runner(occurrence: Occurrence) -> None:
        ran.set()

    with open_scheduler(tmp_path, clock, runner) as scheduler:
        scheduler.sync(desired(cluster("pos", schedule("0 13 * * *"))))
        clock.set(datetime(2025, 6, 2, 13, 0, tzinfo=NEW_YORK))
        assert not ran.is_set()

        scheduler.run()

        assert ran.wait(timeout=10)
