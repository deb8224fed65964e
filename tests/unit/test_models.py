"""Model-level parsing details that the rules rely on."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from agent.daytwo.schedules.triggers import crontab_trigger
from reconciler.models.cluster import OsPatch
from reconciler.models.common import parse_duration


def validated(schedule: str) -> str:
    """A schedule as validation hands it on into the desired state."""
    return OsPatch(schedule=schedule).schedule


def test_sunday_in_crontab_fires_on_sunday() -> None:
    trigger = crontab_trigger(validated("0 3 * * 0"), ZoneInfo("UTC"))
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
