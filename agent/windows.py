"""Maintenance windows: when a site allows disruptive work such as patching and rebooting nodes.

Pure functions over the contract's :class:`~agent.contract.MaintenanceWindow` list of a cluster
(``days`` on which a window opens, ``start`` HH:MM local time, ``duration`` such as ``5h`` or
``1h30m``). A window may run past midnight: ``mon 23:30 5h`` is open until Tuesday 04:30. A
cluster that declares no window may be disrupted at any time. Called by
:mod:`agent.daytwo.operations` before a scheduled patch run and by :mod:`agent.daytwo.patching`
before each node, so a run that outlasts its window stops at the window's end."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agent.contract import MaintenanceWindow
from agent.errors import AgentError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class WindowInvalid(AgentError, ValueError):
    """A window the reconciler should not have let through; the message is one line."""


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not text or match is None:
        raise WindowInvalid(f"'{text}' is not a duration like 30m, 2h or 1d")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def is_open(windows: Sequence[MaintenanceWindow], *, timezone: str, at: datetime) -> bool:
    return not windows or closes_at(windows, timezone=timezone, at=at) is not None


def closes_at(
    windows: Sequence[MaintenanceWindow], *, timezone: str, at: datetime
) -> datetime | None:
    """When the window open at ``at`` closes (the latest end if several overlap), else None."""
    ends = [start + length for start, length in _spans(windows, timezone, at) if start <= at]
    ends = [end for end in ends if end > at]
    return max(ends) if ends else None


def next_opening(windows: Sequence[MaintenanceWindow], *, timezone: str, at: datetime) -> datetime:
    """``at`` itself when a window is open then, else the next time one opens (UTC)."""
    if is_open(windows, timezone=timezone, at=at):
        return at
    return min(start for start, _ in _spans(windows, timezone, at) if start > at)


def _spans(
    windows: Sequence[MaintenanceWindow], timezone: str, at: datetime
) -> Iterator[tuple[datetime, timedelta]]:
    """(start, duration) of every window opening near ``at``: from as far back as the longest
    window can reach, to a week ahead."""
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone).date()
    for window in windows:
        length = parse_duration(window.duration)
        clock = _start(window.start)
        days = {_weekday(day) for day in window.days}
        for offset in range(-(length.days + 1), 8):
            day = local + timedelta(days=offset)
            if day.weekday() in days:
                yield _instant(day, clock, zone), length


def _instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    # a start in the hour clocks skip maps to the hour after it (fold=0 keeps the old offset)
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def _start(text: str) -> time:
    match = _HHMM.match(text)
    if match is None:
        raise WindowInvalid(f"'{text}' is not a time of day HH:MM")
    return time(int(match.group(1)), int(match.group(2)))


def _weekday(name: str) -> int:
    try:
        return WEEKDAYS.index(name.lower()[:3])
    except ValueError:
        raise WindowInvalid(f"'{name}' is not a day of the week (mon … sun)") from None
