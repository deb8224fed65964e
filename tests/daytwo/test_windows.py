"""Maintenance windows as the agent reads them (:mod:`agent.windows`, shared with the
reconciler): open or closed at a local time, across midnight and a DST change, and when work
held for one may run."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from agent import windows
from agent.contract import MaintenanceWindow

NEW_YORK = ZoneInfo("America/New_York")
# the grocery example's windows: weeknights from 23:30 for 5h, Sundays from midnight for 8h
GROCERY = [
    MaintenanceWindow(days=["mon", "tue", "wed", "thu", "fri"], start="23:30", duration="5h"),
    MaintenanceWindow(days=["sun"], start="00:00", duration="8h"),
]


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=NEW_YORK)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("at", "open_", "runs_at"),
    [
        (local(2025, 6, 2, 23, 30), True, local(2025, 6, 2, 23, 30)),  # Monday, as it opens
        (local(2025, 6, 3, 4, 29), True, local(2025, 6, 3, 4, 29)),  # past midnight
        (local(2025, 6, 3, 4, 30), False, local(2025, 6, 3, 23, 30)),  # as it closes
        (local(2025, 6, 3, 12, 0), False, local(2025, 6, 3, 23, 30)),
        (local(2025, 6, 7, 3, 0), True, local(2025, 6, 7, 3, 0)),  # Friday's, on Saturday
        (local(2025, 6, 7, 12, 0), False, local(2025, 6, 8, 0, 0)),  # Saturday: Sunday's
        (local(2025, 6, 8, 7, 59), True, local(2025, 6, 8, 7, 59)),
        (local(2025, 6, 8, 8, 0), False, local(2025, 6, 9, 23, 30)),
        # Sunday 9 March 2025 loses an hour: 8 hours from midnight end at 09:00 EDT
        (local(2025, 3, 9, 8, 30), True, local(2025, 3, 9, 8, 30)),
        (local(2025, 3, 9, 9, 0), False, local(2025, 3, 10, 23, 30)),
    ],
)
def test_windows_at_local_times(at: datetime, open_: bool, runs_at: datetime) -> None:
    assert windows.is_open(GROCERY, "America/New_York", at) is open_
    assert windows.when_open(GROCERY, "America/New_York", at) == runs_at


def test_no_window_means_always_open() -> None:
    assert windows.is_open([], "UTC", local(2025, 6, 3, 12, 0))
    assert windows.when_open([], "UTC", local(2025, 6, 3, 12, 0)) == local(2025, 6, 3, 12, 0)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (MaintenanceWindow(days=["mon"], start="25:00", duration="1h"), "'25:00' is not a time"),
        (MaintenanceWindow(days=["mon"], start="01:00", duration="1 hour"), "not a duration"),
        (MaintenanceWindow(days=["someday"], start="01:00", duration="1h"), "not a day"),
    ],
)
def test_a_window_that_does_not_parse_is_refused(window: MaintenanceWindow, message: str) -> None:
    with pytest.raises(windows.WindowInvalid, match=message):
        windows.is_open([window], "UTC", local(2025, 6, 3, 12, 0))
