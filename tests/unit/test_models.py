"""Model-level parsing details that the rules rely on."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from reconciler.models.common import normalize_cron, parse_duration


@pytest.mark.parametrize(
    ("crontab", "expected"),
    [
        ("0 3 * * 0", "0 3 * * sun"),
        ("0 3 * * 7", "0 3 * * sun"),
        ("0 3 * * 1-5", "0 3 * * mon-fri"),
        ("0 3 * * 1,3,5", "0 3 * * mon,wed,fri"),
        ("0 3 * * */2", "0 3 * * */2"),
        ("0 3 * * 1-5/2", "0 3 * * mon-fri/2"),
        ("0 3 * * sun", "0 3 * * sun"),
        ("*/15 0-6 1 * *", "*/15 0-6 1 * *"),
    ],
)
def test_numeric_weekdays_mean_what_crontab_means(crontab: str, expected: str) -> None:
    assert normalize_cron(crontab) == expected


def test_sunday_in_crontab_fires_on_sunday() -> None:
    trigger = CronTrigger.from_crontab(normalize_cron("0 3 * * 0"), timezone="UTC")
    monday = datetime(2026, 11, 23, tzinfo=ZoneInfo("UTC"))  # a Monday
    fire = trigger.get_next_fire_time(None, monday)
    assert fire is not None and fire.strftime("%A %H:%M") == "Sunday 03:00"


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("1h30m", 5400), ("2d", 172800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "10", "1x", "10 minutes", "m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
