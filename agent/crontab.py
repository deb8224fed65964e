"""Crontab expressions as crontab(5) reads them: the one owner of what a schedule means.

The reconciler validates every schedule with :func:`parse` and the agent fires it with the
trigger that :mod:`agent.daytwo.schedules.triggers` builds from the same :class:`Crontab`,
so what validation promises is what runs. Five fields (minute, hour, day of month, month,
day of week) or a macro (``@yearly``, ``@annually``, ``@monthly``, ``@weekly``, ``@daily``,
``@midnight``, ``@hourly``). A field is a comma list of ``*``, ``N``, ``N-M``, each with an optional
``/STEP`` (``N/STEP`` runs from N to the field's end); months and weekdays also take
three-letter names in any case. Weekdays 0 and 7 are Sunday. When both day fields are
restricted (neither starts with ``*``) a day matches either of them, as crontab runs it.

APScheduler's own cron parsing is not used for the text: it reads 0 as Monday, ``*/2`` in
the weekday field as Monday, Wednesday, Friday, Sunday, and ``sun-sat`` as a backwards
range. The parsed fields are handed to it as explicit lists instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.errors import AgentError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_LONGEST = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # days of each month, at most

_ITEM = re.compile(r"^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$")


class CrontabError(AgentError, ValueError):
    """The text is not a crontab schedule; the message says which part and why."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    first_name: int = 0  # the number of names[0]


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, MONTHS, 1),
    _Field("day of week", 0, 7, WEEKDAYS, 0),
)


@dataclass(frozen=True)
class Crontab:
    """What a crontab line's schedule matches. Weekdays are 0-6, Sunday first."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_or_weekday: bool  # both day fields restricted: a day matching either one runs

    def runs_on(self, day: int, weekday: int) -> bool:
        """Whether a date (day of month, weekday with Sunday 0) is a day this runs on."""
        if self.day_or_weekday:
            return day in self.days or weekday in self.weekdays
        return day in self.days and weekday in self.weekdays


def parse(text: str) -> Crontab:
    """The schedule of a crontab line's time fields; raises CrontabError."""
    stripped = text.strip()
    if stripped.startswith("@"):
        if stripped == "@reboot":
            raise CrontabError("@reboot is not a schedule (it runs once at boot)")
        if stripped not in MACROS:
            raise CrontabError(f"unknown macro {stripped} (known: {', '.join(MACROS)})")
        stripped = MACROS[stripped]
    fields = stripped.split()
    if len(fields) != 5:
        raise CrontabError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    values = [_parse_field(spec, text) for spec, text in zip(_FIELDS, fields, strict=True)]
    weekdays = frozenset(d % 7 for d in values[4])
    either = not fields[2].startswith("*") and not fields[4].startswith("*")
    if not either and not any(day <= _LONGEST[month] for day in values[2] for month in values[3]):
        raise CrontabError(
            f"day {fields[2]} of month {fields[3]} never comes, so the schedule never runs"
        )
    return Crontab(
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=weekdays,
        day_or_weekday=either,
    )


def _parse_field(spec: _Field, text: str) -> frozenset[int]:
    found: set[int] = set()
    for item in text.split(","):
        match = _ITEM.match(item.lower())
        if match is None:
            raise CrontabError(f"{spec.name} field '{text}': '{item}' is not N, N-M, * or a step")
        star, first, last, step = match.groups()
        if star:
            low, high = spec.low, spec.high
        else:
            low = _value(spec, first, text)
            high = _value(spec, last, text) if last else (spec.high if step else low)
        if low > high:
            raise CrontabError(f"{spec.name} field '{text}': the range {item} runs backwards")
        stride = int(step) if step else 1
        if stride == 0:
            raise CrontabError(f"{spec.name} field '{text}': a step must be at least 1")
        found.update(range(low, high + 1, stride))
    return frozenset(found)


def _value(spec: _Field, word: str, text: str) -> int:
    if word.isdigit():
        number = int(word)
        if not spec.low <= number <= spec.high:
            raise CrontabError(
                f"{spec.name} field '{text}': {number} is not in {spec.low}-{spec.high}"
            )
        return number
    if word in spec.names:
        return spec.names.index(word) + spec.first_name
    known = f" (names: {', '.join(spec.names)})" if spec.names else ""
    raise CrontabError(f"{spec.name} field '{text}': '{word}' is not a number{known}")
