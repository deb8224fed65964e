"""The rows the store reads and writes, as frozen dataclasses.

Times are seconds since the epoch (UTC). JSON-shaped fields (labels, windows, waves, report
bodies) stay plain data here; the rollout package gives them meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

Outcome = Literal["good", "failed"]
Level = Literal["info", "warning", "error"]

_Record = TypeVar("_Record")


def amended(record: _Record, **changes: object) -> _Record:
    """``dataclasses.replace`` for the records here, at a quarter of its cost: the copy is
    made without ``__init__`` (they check nothing in it). A wave opening over ten thousand
    sites amends tens of thousands of them. Only a record's own fields can change."""
    fields = type(record).__dataclass_fields__  # type: ignore[attr-defined]
    if not changes.keys() <= fields.keys():
        unknown = ", ".join(sorted(changes.keys() - fields.keys()))
        raise TypeError(f"{type(record).__name__} has no field {unknown}")
    copy = object.__new__(type(record))
    copy.__dict__.update(record.__dict__)
    copy.__dict__.update(changes)
    return copy


@dataclass(frozen=True)
class RevisionRecord:
    sha: str
    outcome: Outcome
    errors: tuple[str, ...]
    recorded_at: float
    reconcile_seconds: float | None = None
    seq: int = 0  # assigned by the store: the order revisions were recorded in
    author: str = ""  # the commit's author name
    subject: str = ""  # the first line of its message


@dataclass(frozen=True)
class Assignment:
    """What one appliance is served now, and what the latest release wants it to run."""

    appliance: str
    site: str
    declared: bool  # in the latest good release
    served_digest: str | None = None
    served_revision: str | None = None
    served_at: float | None = None
    target_digest: str | None = None
    target_revision: str | None = None
    display_name: str | None = None  # the appliance's `name` tag
    decommissioned_at: float | None = None  # removed from Git, nodes gone, token revoked


@dataclass(frozen=True)
class RolloutRecord:
    revision: str
    seq: int
    state: str  # running | halted | done | superseded
    wave: int  # index of the open wave; len(waves) once every wave has passed
    waves: tuple[dict[str, Any], ...]  # {"name": str, "labels": {str: str}}
    max_failures: str  # "2" or "10%"
    soak_seconds: float
    failing: tuple[str, ...]
    started_at: float
    updated_at: float
    finished_at: float | None = None
    accepted: tuple[str, ...] = ()  # failed sites an admin resumed past: they halt nothing


@dataclass(frozen=True)
class RolloutSite:
    revision: str
    site: str
    wave: int
    labels: dict[str, str]
    timezone: str
    windows: tuple[dict[str, Any], ...]  # {"days": [..], "start": "HH:MM", "duration": "4h"}
    changed: bool
    revert: bool
    state: str
    waiting: str = ""
    admitted_at: float | None = None
    healthy_since: float | None = None
    failed_at: float | None = None
    failure: str | None = None
    done_at: float | None = None
    descriptions: dict[str, str] = field(default_factory=dict)  # cluster -> description


@dataclass(frozen=True)
class RolloutTarget:
    revision: str
    appliance: str
    site: str
    digest: str | None  # None: the release has no state for this appliance
    changed: bool  # not yet proven: the appliance has not run this digest healthy for the soak
    disruptive: bool
    clusters: tuple[str, ...]  # the clusters this appliance runs nodes of
    shared: tuple[str, ...]  # those of them spanning several appliances
    control_plane: bool
    waiting: str = ""
    released_at: float | None = None
    revert: bool = False  # it ran this digest healthy before: released past every gate


@dataclass(frozen=True)
class Streak:
    """An appliance's latest healthy run: the digest, since when it has run healthy without
    a break (None: broken by its latest report), and when a run on it first lasted the
    soak (None: not yet proven)."""

    appliance: str
    digest: str
    since: float | None
    proven_at: float | None = None


@dataclass(frozen=True)
class Control:
    """An operator switch that outlives revisions, with who set it and when."""

    name: str
    value: Any
    set_by: str
    set_at: float


@dataclass(frozen=True)
class ChangeRecord:
    """One change agents must see: a state served (``digest`` None: none) or a token
    rotated, for one appliance."""

    kind: Literal["served", "token"]
    appliance: str
    at: float
    digest: str | None = None
    revision: str | None = None
    seq: int = 0  # assigned by the store


@dataclass(frozen=True)
class AgentRecord:
    appliance: str
    hostname: str
    ip: str
    arch: str
    agent_version: str
    registered_at: float
    last_seen: float


@dataclass(frozen=True)
class EnrolmentRecord:
    """A one-time enrolment token, by the hash of the token."""

    appliance: str
    token_hash: str
    issued_by: str
    issued_at: float
    expires_at: float


@dataclass(frozen=True)
class ReportRecord:
    appliance: str
    received_at: float
    applied_digest: str | None
    healthy: bool
    body: dict[str, Any] = field(default_factory=dict)
    in_use: bool = False  # it runs a cluster that is not deleted


@dataclass(frozen=True)
class EventRecord:
    at: float
    level: Level
    kind: str
    message: str
    site: str | None = None
    appliance: str | None = None
    revision: str | None = None
    key: str | None = None
    id: int = 0  # assigned by the store


@dataclass(frozen=True)
class DeliveryRecord:
    """One result reported out (a commit status, a webhook) and how its delivery went."""

    destination: str
    kind: str  # commit-status | webhook
    event: str
    revision: str | None
    state: str  # sending | retrying | delivered | failed | superseded | dropped
    attempts: int
    detail: str
    created_at: float
    updated_at: float
    id: int = 0  # assigned by the store


@dataclass(frozen=True)
class ClusterJoinRecord:
    """A cluster's join secret (its k3s token), when a member first reported it Running,
    and when it left the fleet repository."""

    site: str
    cluster: str
    secret: str = field(repr=False)
    created_at: float
    formed_at: float | None = None
    retired_at: float | None = None


@dataclass(frozen=True)
class LeaseRecord:
    """One appliance of a cluster may take its nodes down (``purpose``) until ``expires_at``."""

    site: str
    cluster: str
    holder: str
    purpose: str
    granted_at: float
    expires_at: float
