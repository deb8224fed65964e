"""The DesiredState's schedules as APScheduler jobs in the site's timezone, kept in
``schedules.sqlite3`` so a run missed while the agent was down runs once when it starts; runs
go one at a time, and a runner may postpone one::

    ScheduleError (agent.daytwo.DayTwoError)
    └── ScheduleStoreError     the job store cannot be opened, read or written
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo

from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.date import DateTrigger
from sqlalchemy.exc import SQLAlchemyError

from agent.clocks import Clock
from agent.contract import DesiredState, Schedule, schedule_from
from agent.daytwo import DayTwoError
from agent.daytwo.schedules.triggers import crontab_trigger

DB_NAME = "schedules.sqlite3"
POSTPONED = "@postponed"
MAX_CATCH_UP = 100_000  # run times counted for one job after a long absence

log = logging.getLogger(__name__)


class ScheduleError(DayTwoError): ...


class ScheduleStoreError(ScheduleError): ...


@dataclass(frozen=True)
class ScheduleSettings:
    # a run missed by more than this (the agent was down) is skipped, not run late
    misfire_grace: timedelta = timedelta(hours=24)
    # the background thread looks again at least this often (clock changes, suspend)
    max_wait: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class Occurrence:
    """One run a schedule asks for: ``due`` is its run time in the schedule's timezone."""

    job: str
    cluster: str
    schedule: Schedule
    due: datetime
    missed: int = 0  # earlier run times coalesced into this one
    postponed: bool = False
    since: datetime | None = None  # a postponed run: when it was first due


@dataclass(frozen=True)
class Postponed:
    """A runner's answer: not now, run this occurrence again at ``until``."""

    until: datetime
    reason: str


Runner = Callable[[Occurrence], Postponed | None]


class FiredState(StrEnum):
    RAN = "ran"
    POSTPONED = "postponed"
    MISSED = "missed"  # older than the misfire grace time: skipped
    FAILED = "failed"  # the runner raised


@dataclass(frozen=True)
class Fired:
    occurrence: Occurrence
    state: FiredState
    at: datetime
    until: datetime | None = None
    error: str | None = None


@dataclass(frozen=True)
class Changes:
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()  # "<job>: <reason>", left out


@dataclass(frozen=True)
class Planned:
    job: str
    next_run: datetime | None  # in the schedule's timezone


def fire(**_: Any) -> None:
    """The jobs' function reference in the store; :meth:`Scheduler.run_due` runs the jobs."""


class Scheduler:
    def __init__(
        self,
        *,
        data_dir: Path,
        clock: Clock,
        runner: Runner,
        settings: ScheduleSettings | None = None,
    ) -> None:
        self._clock = clock
        self._runner = runner
        self._settings = settings or ScheduleSettings()
        self._lock = threading.RLock()
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _mapped(f"open {data_dir / DB_NAME}"):
            store = SQLAlchemyJobStore(url=f"sqlite:///{data_dir / DB_NAME}")
            self._engine = _Engine(
                on_wake=self._wake,
                jobstores={"default": store},
                timezone=UTC,
                job_defaults={
                    "coalesce": True,
                    "max_instances": 1,
                    "misfire_grace_time": int(self._settings.misfire_grace.total_seconds()),
                },
            )
            # paused: nothing runs until run(); tests call run_due() with their own clock
            self._engine.start(paused=True)

    def close(self) -> None:
        """Stop the background thread, after the run in progress if there is one."""
        self._engine.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self) -> None:
        """Run due jobs in APScheduler's background thread from now on."""
        self._engine.resume()

    # -- jobs ------------------------------------------------------------------------------

    def sync(self, state: DesiredState) -> Changes:
        """Make the jobs those of ``state``'s present clusters."""
        desired = {
            f"{cluster.name}/{schedule.name}": (cluster.name, schedule)
            for cluster in state.clusters
            if cluster.phase == "present"
            for schedule in cluster.schedules
        }
        added: list[str] = []
        changed: list[str] = []
        removed: list[str] = []
        invalid: list[str] = []
        now = self._clock.now()
        with self._lock, _mapped("update schedules"):
            existing = {job.id: job for job in self._engine.get_jobs()}
            for job_id, (cluster, schedule) in sorted(desired.items()):
                spec = schedule.model_dump(mode="json")
                kwargs = {"cluster": cluster, "schedule": spec, "postponed": False}
                job = existing.get(job_id)
                if job is not None and job.kwargs["schedule"] == spec:
                    continue
                try:
                    trigger = crontab_trigger(schedule.cron, ZoneInfo(schedule.timezone))
                except (ValueError, KeyError) as e:
                    invalid.append(f"{job_id}: {e}")
                    continue
                # the same times in the same zone keep their next run (a trigger an older
                # agent built from the same text may fire on other times: it is replaced)
                if job is not None and job.kwargs["schedule"]["timezone"] == schedule.timezone:
                    if str(job.trigger) == str(trigger):
                        job.modify(kwargs=kwargs)
                        changed.append(job_id)
                        continue
                first = trigger.get_next_fire_time(None, now)
                self._engine.add_job(
                    fire,
                    trigger=trigger,
                    id=job_id,
                    name=job_id,
                    kwargs=kwargs,
                    next_run_time=first,
                    replace_existing=True,
                )
                (added if job is None else changed).append(job_id)
            for job_id, job in existing.items():
                base = job_id.removesuffix(POSTPONED)
                if base not in desired:
                    self._engine.remove_job(job_id)
                    if job_id == base:
                        removed.append(job_id)
                elif job_id != base:
                    # a postponed run goes ahead with the schedule's current parameters
                    spec = desired[base][1].model_dump(mode="json")
                    if job.kwargs["schedule"] != spec:
                        job.modify(kwargs={**job.kwargs, "schedule": spec})
        return Changes(tuple(added), tuple(changed), tuple(removed), tuple(invalid))

    def planned(self) -> tuple[Planned, ...]:
        with self._lock, _mapped("read schedules"):
            jobs = self._engine.get_jobs()
        return tuple(
            Planned(job.id, _local(job.next_run_time, job.kwargs["schedule"]["timezone"]))
            for job in sorted(jobs, key=lambda j: j.id)
        )

    # -- running ---------------------------------------------------------------------------
    # APScheduler 3 reads the wall clock itself when it looks for due jobs; the agent's clock is
    # a collaborator, so that pass is ours. It honours each job's coalesce and misfire grace
    # time, and APScheduler's background thread calls it (_wake), then sleeps until the next.

    def run_due(self) -> tuple[Fired, ...]:
        """Run every job due at the clock's now, each once, one after the other."""
        now = self._clock.now()
        fired: list[Fired] = []
        due: list[Occurrence] = []
        with self._lock, _mapped("read due schedules"):
            for job in self._engine.get_jobs():
                if job.next_run_time is None or job.next_run_time > now:
                    continue
                times = _run_times(job, now)
                following = job.trigger.get_next_fire_time(times[-1], now)
                # advanced before it runs: a run cut short by a crash is not run twice
                if following is None:
                    self._engine.remove_job(job.id)
                else:
                    job.modify(next_run_time=following)
                runs = times[-1:] if job.coalesce else times
                grace = job.misfire_grace_time
                for index, at in enumerate(runs):
                    occurrence = _occurrence(job, at, missed=len(times) - len(runs) + index)
                    if grace is not None and now - at > timedelta(seconds=grace):
                        fired.append(Fired(occurrence, FiredState.MISSED, now))
                    else:
                        due.append(occurrence)
        for occurrence in sorted(due, key=lambda o: (o.due, o.job)):
            fired.append(self._run(occurrence))
        return tuple(fired)

    def _run(self, occurrence: Occurrence) -> Fired:
        started = self._clock.now()
        try:
            outcome = self._runner(occurrence)
        except Exception as e:  # one failing run must never stop the schedule
            log.exception("scheduled run %s failed", occurrence.job)
            message = (str(e).splitlines() or [type(e).__name__])[0][:300]
            return Fired(occurrence, FiredState.FAILED, started, error=message)
        if outcome is None:
            return Fired(occurrence, FiredState.RAN, started)
        self._postpone(occurrence, outcome.until)
        return Fired(occurrence, FiredState.POSTPONED, started, until=outcome.until)

    def _postpone(self, occurrence: Occurrence, until: datetime) -> None:
        base = occurrence.job.removesuffix(POSTPONED)
        kwargs = {
            "cluster": occurrence.cluster,
            "schedule": occurrence.schedule.model_dump(mode="json"),
            "postponed": True,
            "since": (occurrence.since or occurrence.due).isoformat(),
        }
        with self._lock, _mapped(f"postpone {base}"):
            self._engine.add_job(
                fire,
                trigger=DateTrigger(run_date=until, timezone=UTC),
                id=base + POSTPONED,
                name=base + POSTPONED,
                kwargs=kwargs,
                next_run_time=until,
                replace_existing=True,
            )

    def _wake(self) -> float:
        """APScheduler's thread: run what is due, then say how long to sleep."""
        self.run_due()
        with self._lock, _mapped("read schedules"):
            times = [job.next_run_time for job in self._engine.get_jobs() if job.next_run_time]
        limit = self._settings.max_wait.total_seconds()
        if not times:
            return limit
        wait: float = (min(times) - self._clock.now()).total_seconds()
        return min(max(wait, 0.0), limit)


class _Engine(BackgroundScheduler):  # type: ignore[misc]
    """APScheduler's background scheduler with the due-job pass handed to the agent."""

    def __init__(self, *, on_wake: Callable[[], float], **options: Any) -> None:
        self._on_wake = on_wake
        super().__init__(**options)

    def _process_jobs(self) -> float | None:
        if self.state != STATE_RUNNING:  # paused or stopping
            return None
        try:
            return self._on_wake()
        except Exception:  # the thread must outlive any one pass: look again shortly
            log.exception("schedules: a pass over the due jobs failed")
            return 30.0


def _run_times(job: Job, now: datetime) -> list[datetime]:
    times: list[datetime] = []
    at: datetime | None = job.next_run_time
    while at is not None and at <= now and len(times) < MAX_CATCH_UP:
        times.append(at)
        at = job.trigger.get_next_fire_time(at, now)
    return times


def _occurrence(job: Job, at: datetime, *, missed: int) -> Occurrence:
    schedule = schedule_from(job.kwargs["schedule"])
    return Occurrence(
        job=job.id,
        cluster=job.kwargs["cluster"],
        schedule=schedule,
        due=at.astimezone(ZoneInfo(schedule.timezone)),
        missed=missed,
        postponed=bool(job.kwargs.get("postponed")),
        since=datetime.fromisoformat(job.kwargs["since"]) if job.kwargs.get("since") else None,
    )


def _local(moment: datetime | None, timezone: str) -> datetime | None:
    return None if moment is None else moment.astimezone(ZoneInfo(timezone))


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as e:
        raise ScheduleStoreError(f"{what}: {str(e).splitlines()[0][:300]}") from e
