"""Building blocks shared by every fleet kind: strict base model, names, durations, cron.

Durations and times of day parse as the agent parses them (:mod:`agent.windows`).

Every model forbids unknown fields and coerces nothing, so a typo or a wrong type in the
repository is an error rather than something silently ignored.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agent import crontab
from agent.secrets.errors import MalformedSecret
from agent.secrets.keys import check_recipient
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


def _cron(value: str) -> str:
    """Crontab text as crontab(5) reads it (:mod:`agent.crontab` is the one reading, shared
    with the agent that fires it); kept as written, with runs of blanks made one space."""
    problem = _cron_problem(value)
    if problem is not None:
        raise ValueError(f"cron expression '{value}' does not parse: {problem}")
    return " ".join(value.split())


@functools.lru_cache(maxsize=4096)
def _cron_problem(value: str) -> str | None:
    """Why ``value`` is not a crontab schedule, found once per text: ten thousand sites
    repeat the same few."""
    try:
        crontab.parse(value)
    except crontab.CrontabError as e:
        return str(e)
    return None


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{value}' is not an IANA time zone") from None
    return value


def _cidr(value: str) -> str:
    try:
        parsed_network(value)
    except ValueError:
        raise ValueError(f"'{value}' is not a CIDR network address like 10.0.0.0/24") from None
    return value


@functools.lru_cache(maxsize=4096)
def parsed_network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``ipaddress.ip_network`` (strict), made once per text: every cluster of a fleet
    repeats the same pod and service CIDRs. Raises ValueError."""
    return ipaddress.ip_network(cidr, strict=True)


def _ipv4(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"'{value}' is not an IPv4 address") from None
    return value


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _dns_domain(value: str) -> str:
    """A DNS domain of lowercase labels, as Kubernetes takes for a cluster domain."""
    if len(value) > 253 or not all(_DNS_LABEL.fullmatch(p) for p in value.split(".")):
        raise ValueError(f"'{value}' is not a DNS domain like cluster.local")
    return value


def _hhmm(value: str) -> str:
    parse_time_of_day(value)
    return value


def _url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"'{value}' is not an http:// or https:// URL")
    return value


def _relative_path(value: str) -> str:
    """A file in the repository, relative to the document that names it (checked against the
    repository's root where the document is known, :mod:`reconciler.loading.files`)."""
    if not value or value.startswith("/") or "\\" in value or "\x00" in value:
        raise ValueError(f"'{value}' must be a relative path with '/' separators")
    if any(part in ("", ".") for part in value.split("/")):
        raise ValueError(f"'{value}' has an empty or '.' part")
    return value


def _age_recipient(value: str) -> str:
    """An X25519 age recipient (``age1...``), checked as age itself reads it."""
    try:
        check_recipient(value)
    except MalformedSecret as e:
        raise ValueError(str(e)) from None
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
DnsDomain = Annotated[str, AfterValidator(_dns_domain)]
TimeOfDay = Annotated[str, AfterValidator(_hhmm)]
Url = Annotated[str, AfterValidator(_url)]
PlainFileName = Annotated[str, AfterValidator(_plain_file_name)]
RelativePath = Annotated[str, AfterValidator(_relative_path)]
AgeRecipient = Annotated[str, AfterValidator(_age_recipient)]
Scalar = str | int | float | bool
Labels = dict[str, str]
Values = dict[str, Any]
NonEmptyStr = Annotated[str, Field(min_length=1)]
