"""Crontab schedules: what validation accepts is what the agent fires, at crontab's times.

A table of expressions with their next fire times (checked by hand against crontab(5)), the
forms that are refused with their reasons, and a property test that compares the agent's
triggers with cronsim, an independent implementation of Debian cron's rules.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from cronsim import CronSim, CronSimError
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent.crontab import CrontabError, parse
from agent.daytwo.schedules.triggers import crontab_trigger
from reconciler.models.common import _cron

START = datetime(2024, 1, 1, 0, 0, 30, tzinfo=UTC)  # a Monday, between two minutes

NEXT_FIRE_TIMES = [
    # every weekday written as a range, and a step over weekdays (0 and 7 are Sunday)
    ("0 4 * * 0-6", ["2024-01-01 04:00 Mon", "2024-01-02 04:00 Tue", "2024-01-03 04:00 Wed"]),
    ("0 4 * * */2", ["2024-01-02 04:00 Tue", "2024-01-04 04:00 Thu", "2024-01-06 04:00 Sat",
                     "2024-01-07 04:00 Sun"]),
    ("0 3 * * 0", ["2024-01-07 03:00 Sun", "2024-01-14 03:00 Sun"]),
    ("0 3 * * 7", ["2024-01-07 03:00 Sun", "2024-01-14 03:00 Sun"]),
    ("0 3 * * SUN", ["2024-01-07 03:00 Sun", "2024-01-14 03:00 Sun"]),
    ("0 0 * * 5-7", ["2024-01-05 00:00 Fri", "2024-01-06 00:00 Sat", "2024-01-07 00:00 Sun"]),
    ("0 0 * * 6,7", ["2024-01-06 00:00 Sat", "2024-01-07 00:00 Sun", "2024-01-13 00:00 Sat"]),
    ("0 22 * * 1-5/2", ["2024-01-01 22:00 Mon", "2024-01-03 22:00 Wed", "2024-01-05 22:00 Fri",
                        "2024-01-08 22:00 Mon"]),
    ("30 2 * * mon-fri", ["2024-01-01 02:30 Mon", "2024-01-02 02:30 Tue"]),
    # macros
    ("@daily", ["2024-01-02 00:00 Tue", "2024-01-03 00:00 Wed"]),
    ("@midnight", ["2024-01-02 00:00 Tue", "2024-01-03 00:00 Wed"]),
    ("@hourly", ["2024-01-01 01:00 Mon", "2024-01-01 02:00 Mon"]),
    ("@weekly", ["2024-01-07 00:00 Sun", "2024-01-14 00:00 Sun"]),
    ("@monthly", ["2024-02-01 00:00 Thu", "2024-03-01 00:00 Fri"]),
    ("@yearly", ["2025-01-01 00:00 Wed", "2026-01-01 00:00 Thu"]),
    ("@annually", ["2025-01-01 00:00 Wed", "2026-01-01 00:00 Thu"]),
    # ranges, steps, lists and names in the other fields
    ("*/15 0-6 1 * *", ["2024-01-01 00:15 Mon", "2024-01-01 00:30 Mon", "2024-01-01 00:45 Mon"]),
    ("5/20 * * * *", ["2024-01-01 00:05 Mon", "2024-01-01 00:25 Mon", "2024-01-01 00:45 Mon",
                      "2024-01-01 01:05 Mon"]),
    ("0 9-17/4 * jan-mar/2 fri", ["2024-01-05 09:00 Fri", "2024-01-05 13:00 Fri",
                                  "2024-01-05 17:00 Fri", "2024-01-12 09:00 Fri"]),
    ("0 0 1 */3 *", ["2024-04-01 00:00 Mon", "2024-07-01 00:00 Mon", "2024-10-01 00:00 Tue"]),
    ("0 0 31 * *", ["2024-01-31 00:00 Wed", "2024-03-31 00:00 Sun", "2024-05-31 00:00 Fri"]),
    ("0 12 29 2 *", ["2024-02-29 12:00 Thu", "2028-02-29 12:00 Tue"]),
    # both day fields restricted: either matches; one starting with * : both must match
    ("0 0 1,15 * mon", ["2024-01-08 00:00 Mon", "2024-01-15 00:00 Mon", "2024-01-22 00:00 Mon"]),
    ("0 0 13 * fri", ["2024-01-05 00:00 Fri", "2024-01-12 00:00 Fri", "2024-01-13 00:00 Sat"]),
    ("0 0 */2 * mon", ["2024-01-15 00:00 Mon", "2024-01-29 00:00 Mon", "2024-02-05 00:00 Mon"]),
]


def fire_times(expression: str, start: datetime, count: int) -> list[datetime]:
    trigger = crontab_trigger(expression, UTC)
    times: list[datetime] = []
    previous, now = None, start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        times.append(fire)
        previous = now = fire
    return times


IDS = [e for e, _ in NEXT_FIRE_TIMES]


@pytest.mark.parametrize(("expression", "expected"), NEXT_FIRE_TIMES, ids=IDS)
def test_the_agent_fires_at_crontab_times(expression: str, expected: list[str]) -> None:
    got = [t.strftime("%Y-%m-%d %H:%M %a") for t in fire_times(expression, START, len(expected))]
    assert got == expected


@pytest.mark.parametrize(("expression", "_"), NEXT_FIRE_TIMES, ids=IDS)
def test_validation_accepts_what_the_agent_fires(expression: str, _: list[str]) -> None:
    assert _cron(expression) == expression


REFUSED = [
    ("30 25 * * *", "hour field '25': 25 is not in 0-23"),
    ("60 * * * *", "minute field '60': 60 is not in 0-59"),
    ("0 0 0 * *", "day of month field '0': 0 is not in 1-31"),
    ("0 0 * 13 *", "month field '13': 13 is not in 1-12"),
    ("0 0 * * 8", "day of week field '8': 8 is not in 0-7"),
    ("0 0 1-32 * *", "32 is not in 1-31"),
    ("0 0 * * fri-sun", "the range fri-sun runs backwards"),
    ("0 0 * * 5-1", "the range 5-1 runs backwards"),
    ("*/0 * * * *", "a step must be at least 1"),
    ("0 0 * foo *", "'foo' is not a number (names: jan"),
    ("0 0 * * monday", "'monday' is not a number (names: sun"),
    ("0 0 L * *", "'l' is not a number"),
    ("0 0 ? * *", "'?' is not N, N-M, * or a step"),
    ("0 0 * * 1#2", "'1#2' is not N, N-M, * or a step"),
    ("0 0 1,,2 * *", "'' is not N, N-M, * or a step"),
    ("* * * *", "expected 5 fields"),
    ("0 0 1 * * *", "expected 5 fields"),
    ("", "expected 5 fields"),
    ("@reboot", "@reboot is not a schedule"),
    ("@often", "unknown macro @often"),
    ("@DAILY", "unknown macro @DAILY"),
    ("0 0 30 2 *", "day 30 of month 2 never comes"),
    ("0 0 31 apr,jun *", "never comes"),
]


@pytest.mark.parametrize(("expression", "reason"), REFUSED, ids=[e or "empty" for e, _ in REFUSED])
def test_forms_crontab_does_not_run_are_refused(expression: str, reason: str) -> None:
    with pytest.raises(CrontabError) as refused:
        parse(expression)
    assert reason in str(refused.value)
    with pytest.raises(ValueError) as invalid:
        _cron(expression)
    assert str(invalid.value).startswith(f"cron expression '{expression}' does not parse: ")


def test_a_day_that_exists_in_some_month_runs_there() -> None:
    assert parse("0 0 31 * *").days == frozenset({31})
    assert parse("0 0 30 2 mon").day_or_weekday  # Mondays still come


# -- generated expressions against an independent implementation --------------------------

FIELDS = [  # (low, high, names, first number of names)
    (0, 59, (), 0),
    (0, 23, (), 0),
    (1, 31, (), 0),
    (1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
             "dec"), 1),
    (0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"), 0),
]


@st.composite
def field(draw: st.DrawFn, index: int) -> str:
    low, high, names, first = FIELDS[index]

    def value(number: int) -> str:
        name = number - first
        if names and 0 <= name < len(names) and draw(st.booleans()):
            return draw(st.sampled_from([names[name], names[name].upper()]))
        return str(number)

    def item() -> str:
        shape = draw(st.sampled_from(["*", "*/s", "n", "n-m", "n-m/s", "n/s"]))
        step = str(draw(st.integers(1, high - low + 1)))
        if shape.startswith("*"):
            return "*" if shape == "*" else f"*/{step}"
        a = draw(st.integers(low, high - 1))
        # a range of one value with a step (5-5/2) is left out: cronsim reads it as 5/2
        b = draw(st.integers(a + 1, high)) if shape == "n-m/s" else draw(st.integers(a, high))
        return {
            "n": value(a),
            "n-m": f"{value(a)}-{value(b)}",
            "n-m/s": f"{value(a)}-{value(b)}/{step}",
            "n/s": f"{value(a)}/{step}",
        }[shape]

    return ",".join(item() for _ in range(draw(st.integers(1, 3))))


expressions = st.tuples(*(field(i) for i in range(5))).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(
    expression=expressions,
    start=st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31)).map(
        lambda d: d.replace(second=30, microsecond=0, tzinfo=UTC)
    ),
)
def test_generated_schedules_fire_when_cron_would(expression: str, start: datetime) -> None:
    try:
        oracle = CronSim(expression.upper(), start.replace(tzinfo=None))
        expected = [next(oracle) for _ in range(5)]
    except (CronSimError, StopIteration):
        assume(False)  # a schedule that never runs (day 31 of February): refused, see above
        return
    got = fire_times(expression, start, 5)
    assert [t.replace(tzinfo=None) for t in got] == expected


@settings(max_examples=300, deadline=None)
@given(expression=expressions)
def test_parsed_schedules_match_every_minute_they_fire_at(expression: str) -> None:
    try:
        schedule = parse(expression)
    except CrontabError:
        assume(False)
        return
    times = fire_times(expression, START, 6)
    for moment in times:
        weekday = (moment.weekday() + 1) % 7
        assert moment.minute in schedule.minutes and moment.hour in schedule.hours
        assert moment.month in schedule.months
        assert schedule.runs_on(moment.day, weekday)
    # and no minute between two fire times matches (checked for the first gap only)
    first, second = times[0], times[1]
    gap = second - first
    if gap <= timedelta(days=2):
        moment = first + timedelta(minutes=1)
        while moment < second:
            weekday = (moment.weekday() + 1) % 7
            assert not (
                moment.minute in schedule.minutes
                and moment.hour in schedule.hours
                and moment.month in schedule.months
                and schedule.runs_on(moment.day, weekday)
            ), moment
            moment += timedelta(minutes=1)
    assert all(a < b for a, b in pairwise(times))
