"""Cron triggers that keep to a site's local wall clock across daylight-saving changes: each
local time fires once, and one that clocks skip fires as they skip it, as cron does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger


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
