"""Building blocks shared by every fleet kind: strict base model, names, durations, cron.

Durations and times of day parse as the agent parses them (:mod:`agent.windows`).

Every model forbids unknown fields and coerces nothing, so a typo or a wrong type in the
repository is an error rather than something silently ignored.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agent.windows import parse_duration as parse_duration  # re-exported for the reconciler
from agent.windows import parse_time_of_day

API_VERSION = "edgefleet.dev/v1"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PLAIN_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


class Strict(BaseModel):
    """Base of every repository document: unknown fields and type coercion are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _name(value: str) -> str:
    if len(value) > 63 or not _NAME.fullmatch(value):
        raise ValueError(
            f"'{value}' is not a valid name (lowercase letters, digits and '-', at most 63)"
        )
    return value


def _duration(value: str) -> str:
    parse_duration(value)
    return value


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NUMBER = re.compile(r"(?<![/\d])([0-7])(?!\d)")


def normalize_cron(value: str) -> str:
    """Crontab text with numeric weekdays written as names.

    In crontab 0 (and 7) is Sunday; APScheduler, which the agent schedules with, reads 0 as
    Monday. Names mean the same to both, so schedules carry names.
    """
    fields = value.split()
    if len(fields) == 5:
        fields[4] = _WEEKDAY_NUMBER.sub(lambda m: _WEEKDAYS[int(m.group(1))], fields[4])
    return " ".join(fields)


def _cron(value: str) -> str:
    normalized = normalize_cron(value)
    try:
        CronTrigger.from_crontab(normalized, timezone="UTC")
    except ValueError as e:
        raise ValueError(f"cron expression '{value}' does not parse: {e}") from None
    return normalized


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{value}' is not an IANA time zone") from None
    return value


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(f"'{value}' is not a CIDR network address like 10.0.0.0/24") from None
    return value


def _ipv4(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"'{value}' is not an IPv4 address") from None
    return value


def _hhmm(value: str) -> str:
    parse_time_of_day(value)
    return value


def _url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"'{value}' is not an http:// or https:// URL")
    return value


def _plain_file_name(value: str) -> str:
    if not _PLAIN_FILE.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"manifest name '{value}' must be a plain file name, not a path")
    return value


Name = Annotated[str, AfterValidator(_name)]
Duration = Annotated[str, AfterValidator(_duration)]
Cron = Annotated[str, AfterValidator(_cron)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Cidr = Annotated[str, AfterValidator(_cidr)]
IPv4 = Annotated[str, AfterValidator(_ipv4)]
TimeOfDay = Annotated[str, AfterValidator(_hhmm)]
Url = Annotated[str, AfterValidator(_url)]
PlainFileName = Annotated[str, AfterValidator(_plain_file_name)]
Scalar = str | int | float | bool
Labels = dict[str, str]
Values = dict[str, Any]
NonEmptyStr = Annotated[str, Field(min_length=1)]
