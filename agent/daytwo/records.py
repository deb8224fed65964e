"""What day-2 runs did, as data: patches, scans, backups and restores, with the JSON the
history keeps and the status report reads. A run that failed says so in ``state`` and
``error``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Self

from pydantic import ConfigDict, TypeAdapter
from pydantic.alias_generators import to_camel

FINDINGS_KEPT = 200  # per scan; the counts cover every result
TEXT_KEPT = 500  # characters of a finding's text


class RunState(StrEnum):
    DONE = "done"
    FAILED = "failed"
    POSTPONED = "postponed"  # outside the maintenance window: runs when it opens


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    BOOT = "boot"
    ON_DEMAND = "on-demand"


class _Json:
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(
        alias_generator=to_camel, populate_by_name=True
    )

    def to_json(self) -> dict[str, Any]:
        dumped: dict[str, Any] = _adapter(type(self)).dump_python(self, mode="json", by_alias=True)
        return dumped

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Self:
        loaded: Self = _adapter(cls).validate_python(value)
        return loaded


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(kind: type[Any]) -> TypeAdapter[Any]:
    # one adapter per outcome type, built on first use (building one is slow)
    found = _ADAPTERS.get(kind)
    if found is None:
        found = _ADAPTERS[kind] = TypeAdapter(kind)
    return found


@dataclass(frozen=True)
class NodePatch(_Json):
    """One node's patch: the version it reports after, and whether it rebooted."""

    cluster: str
    node: str
    pool: str
    state: RunState
    at: datetime
    version: str | None = None
    previous: str | None = None
    reboot_required: bool = False
    rebooted: bool = False
    error: str | None = None


@dataclass(frozen=True)
class PatchResult(_Json):
    cluster: str
    trigger: Trigger
    state: RunState
    started_at: datetime
    finished_at: datetime
    nodes: tuple[NodePatch, ...] = ()
    postponed_until: datetime | None = None  # the window closed before every node was done
    error: str | None = None


@dataclass(frozen=True)
class Finding(_Json):
    id: str
    status: str  # the tool's word: FAIL, WARN, or a severity such as high
    title: str
    where: str = ""  # node, location, plugin
    remediation: str = ""


@dataclass(frozen=True)
class ScanSummary(_Json):
    passed: int
    warned: int
    failed: int
    info: int = 0  # kube-bench INFO results, sonobuoy skipped tests
    findings: tuple[Finding, ...] = ()  # failed and warned results, at most FINDINGS_KEPT
    errored: int = 0  # checks the tool could not run: in none of the counts above
    errors: tuple[Finding, ...] = ()  # those checks, at most FINDINGS_KEPT
    other: int = 0  # results of the tool's own statuses (sonobuoy's custom ones)
    benchmark: str = ""  # as the report names it (kube-bench's controls' version)


@dataclass(frozen=True)
class ScanResult(_Json):
    cluster: str
    scan: str  # configuration | penetration | conformance
    tool: str  # kube-bench | kube-hunter | sonobuoy
    image: str
    trigger: Trigger
    state: RunState
    started_at: datetime
    finished_at: datetime
    summary: ScanSummary | None = None
    error: str | None = None
    version: str = ""  # the tool's
    benchmark: str = ""  # what the tool judged against: a CIS benchmark, a sonobuoy mode


@dataclass(frozen=True)
class BackupFile(_Json):
    name: str
    node: str
    pool: str
    role: str
    volume: str
    path: str  # where the node mounts the volume
    size: int
    sha256: str


@dataclass(frozen=True)
class BackupResult(_Json):
    id: str
    cluster: str
    location: str  # the location's name and where it is
    trigger: Trigger
    state: RunState
    started_at: datetime
    finished_at: datetime
    files: tuple[BackupFile, ...] = ()
    pruned: tuple[str, ...] = ()  # older backups removed past expiryHours
    error: str | None = None
    warning: str | None = None  # the backup is done, pruning older ones failed

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class RestoreResult(_Json):
    backup: str
    source: str  # the cluster the backup was taken of
    cluster: str  # the cluster restored into
    started_at: datetime
    finished_at: datetime
    volumes: tuple[str, ...]


@dataclass(frozen=True)
class DayTwoStatus(_Json):
    """A cluster's day-2 state for the status report: the last result of each kind."""

    cluster: str
    patches: tuple[NodePatch, ...] = ()  # the last patch of each node
    scans: tuple[ScanResult, ...] = ()  # the last run of each scan type
    last_backup: BackupResult | None = None
    last_good_backup: BackupResult | None = None
    last_restore: RestoreResult | None = None


def clip(text: str, limit: int = TEXT_KEPT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
