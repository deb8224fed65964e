"""Cron triggers in a site's local time: :func:`crontab_trigger` turns a schedule's crontab
text (read by :mod:`agent.crontab`, as validation reads it) into triggers that fire exactly
when crontab would, each local time once across daylight-saving changes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from agent import crontab


class LocalCron(CronTrigger):  # type: ignore[misc]
    """A cron trigger that keeps to the local wall clock across daylight-saving changes."""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        zone = self.timezone
        candidate: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        # when clocks go back a local time comes round twice; it has run already
        while (
            candidate is not None
            and previous_fire_time is not None
            and _wall(candidate, zone) <= _wall(previous_fire_time, zone)
        ):
            candidate = super().get_next_fire_time(candidate, max(_utc(now), _utc(candidate)))
        return None if candidate is None else _existing(candidate, zone)


def crontab_trigger(text: str, timezone: tzinfo) -> BaseTrigger:
    """The trigger that fires when crontab would run ``text`` in ``timezone``; raises
    :class:`agent.crontab.CrontabError` (a ValueError) for text that is not a schedule."""
    schedule = crontab.parse(text)

    def cron(days: str, weekdays: str) -> LocalCron:
        return LocalCron(
            minute=_listed(schedule.minutes),
            hour=_listed(schedule.hours),
            day=days,
            month=_listed(schedule.months),
            day_of_week=weekdays,
            timezone=timezone,
        )

    days = _listed(schedule.days)
    # by name: APScheduler numbers weekdays from Monday
    weekdays = ",".join(crontab.WEEKDAYS[d] for d in sorted(schedule.weekdays))
    if schedule.day_or_weekday:  # a day matching either field runs
        return OrTrigger([cron(days, "*"), cron("*", weekdays)])
    return cron(days, weekdays)


def _listed(values: Iterable[int]) -> str:
    return ",".join(str(v) for v in sorted(values))


def _wall(moment: datetime, zone: Any) -> datetime:
    return moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None)


def _existing(moment: datetime, zone: Any) -> datetime:
    """``moment`` if its local time exists; one in the hour clocks skip becomes the instant
    they skip it, as cron runs such jobs."""
    if _wall(moment, zone) == moment.replace(tzinfo=None):
        return moment
    # fold=1 reads the wall time with the offset after the change, fold=0 with the one before;
    # the change lies between the two readings, on a whole minute
    after = moment.replace(fold=0).astimezone(UTC).astimezone(zone).utcoffset()
    low = int(moment.replace(fold=1).timestamp()) // 60
    high = int(moment.replace(fold=0).timestamp()) // 60
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle * 60, zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high * 60, zone)


def _utc(moment: datetime) -> datetime:
    # aware datetimes sharing one tzinfo compare by wall time, blind to a repeated hour
    return moment.astimezone(UTC)
