"""Maintenance windows: is one open now, in the site's time zone, and when does the next open.

The rollout holds disruptive changes with these rules and plan shows the window that will
hold them, so they live here, below both.

A window opens on each of its ``days`` at ``start`` local time and stays open for
``duration``, which may run past midnight. Durations are absolute, so a window that spans a
DST change still lasts what it says.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agent.contract import MaintenanceWindow

from ..models import parse_duration

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def window_open(windows: Iterable[MaintenanceWindow], timezone: str, at: datetime) -> bool:
    return any(start <= at < end for start, end in _spans(windows, timezone, at, back=True))


def next_opening(
    windows: Iterable[MaintenanceWindow], timezone: str, at: datetime
) -> datetime | None:
    """The start of the next window after ``at`` (None when there are no windows)."""
    starts = [start for start, _ in _spans(windows, timezone, at, back=False) if start > at]
    return min(starts, default=None)


def _spans(
    windows: Iterable[MaintenanceWindow], timezone: str, at: datetime, *, back: bool
) -> Iterator[tuple[datetime, datetime]]:
    zone = ZoneInfo(timezone)
    today = at.astimezone(zone).date()
    for window in windows:
        length = parse_duration(window.duration)
        hours, minutes = (int(part) for part in window.start.split(":"))
        # windows that started up to `length` ago may still be open; look 8 days ahead
        first = -(length.days + 1) if back else 0
        for offset in range(first, 8):
            day = today + timedelta(days=offset)
            if DAYS[day.weekday()] not in window.days:
                continue
            start = datetime.combine(day, time(hours, minutes), tzinfo=zone).astimezone(UTC)
            yield start, start + length
