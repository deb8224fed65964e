"""Maintenance windows and durations: the one owner of both rules, for the reconciler's
validation and rollout gates and for the agent's patch runs.

A window opens on each of its ``days`` at ``start`` (HH:MM, the site's local time) and stays
open for ``duration`` (``5h``, ``1h30m``), past midnight if need be; durations are absolute, so
a window that spans a DST change lasts what it says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agent.contract import MaintenanceWindow
from agent.errors import AgentError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class WindowInvalid(AgentError, ValueError):
    """A duration, time of day or weekday that does not parse; the message is one line."""


def parse_duration(text: str) -> timedelta:
    """``1h30m``-style durations: days, hours, minutes and seconds, in that order."""
    match = _DURATION.match(text)
    if not text or match is None:
        raise WindowInvalid(f"'{text}' is not a duration like 30s, 15m, 2h or 1d")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def parse_time_of_day(text: str) -> time:
    match = _HHMM.match(text)
    if match is None:
        raise WindowInvalid(f"'{text}' is not a time of day HH:MM")
    return time(int(match.group(1)), int(match.group(2)))


def window_open(windows: Iterable[MaintenanceWindow], timezone: str, at: datetime) -> bool:
    """Whether one of ``windows`` is open at ``at`` (never, when there are none)."""
    return closes_at(windows, timezone, at) is not None


def closes_at(windows: Iterable[MaintenanceWindow], timezone: str, at: datetime) -> datetime | None:
    """When the window open at ``at`` closes (the latest end if several overlap), else None."""
    ends = [start + length for start, length in _spans(windows, timezone, at) if start <= at]
    return max((end for end in ends if end > at), default=None)


def next_opening(
    windows: Iterable[MaintenanceWindow], timezone: str, at: datetime
) -> datetime | None:
    """When one of ``windows`` next opens after ``at`` (None when there are none)."""
    return min((start for start, _ in _spans(windows, timezone, at) if start > at), default=None)


def is_open(windows: Iterable[MaintenanceWindow], timezone: str, at: datetime) -> bool:
    """Whether disruptive work may run at ``at``: inside a window, or at any time for a cluster
    that declares none."""
    declared = list(windows)
    return not declared or window_open(declared, timezone, at)


def when_open(windows: Iterable[MaintenanceWindow], timezone: str, at: datetime) -> datetime:
    """``at`` itself when :func:`is_open`, else when the next window opens."""
    declared = list(windows)
    opening = None if is_open(declared, timezone, at) else next_opening(declared, timezone, at)
    return opening or at


def _spans(
    windows: Iterable[MaintenanceWindow], timezone: str, at: datetime
) -> Iterator[tuple[datetime, timedelta]]:
    """(start, duration) of every window opening near ``at``: from as far back as the longest
    window can reach, to a week ahead."""
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone).date()
    for window in windows:
        length = parse_duration(window.duration)
        clock = parse_time_of_day(window.start)
        days = {_weekday(day) for day in window.days}
        for offset in range(-(length.days + 1), 8):
            day = local + timedelta(days=offset)
            if day.weekday() in days:
                yield _instant(day, clock, zone), length


def _instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    # a start in the hour clocks skip maps to the hour after it (fold=0 keeps the old offset)
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def _weekday(name: str) -> int:
    try:
        return WEEKDAYS.index(name.lower()[:3])
    except ValueError:
        raise WindowInvalid(f"'{name}' is not a day of the week (mon … sun)") from None
