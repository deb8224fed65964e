"""Fleet and site status as operators read them: the documents of ``GET /v1/fleet``,
``GET /v1/sites/{site}`` and ``edgefleet status``. Built by :mod:`.reading`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from agent.contract import (
    ClusterPhase,
    MaintenanceWindow,
    NodePhase,
    PolicyRun,
    ScanStatus,
    TaskState,
)

from .statuses import ApplianceStatus, Health


class View(BaseModel):
    pass


class RevisionView(View):
    sha: str
    short: str
    recordedAt: datetime
    reconcileSeconds: float | None = None
    author: str = ""
    subject: str = ""  # the first line of the commit message


class FailureView(RevisionView):
    errors: list[str]
    current: bool  # newer than the newest good revision


class SiteFailure(View):
    site: str
    error: str
    revert: list[str]  # `git revert <sha>` of each commit that brought the failing state


class RolloutView(View):
    revision: str
    short: str
    state: str  # running | halted | done | superseded
    wave: str | None  # the open wave; None once every wave has opened
    waveIndex: int
    waves: list[str]
    failing: list[str]
    sitesChanged: int
    sitesDone: int
    sitesFailed: int
    progress: float  # settled changed sites / changed sites
    startedAt: datetime
    finishedAt: datetime | None = None
    paused: bool = False  # an admin paused it: nothing new is released until resumed
    pausedBy: str | None = None
    accepted: list[str] = []  # failed sites an admin resumed past
    failures: list[SiteFailure] = []  # the failing sites, why, and how to undo


class ApplianceCounts(View):
    total: int
    healthy: int
    unhealthy: int  # registered and unhealthy, offline ones included
    unpaired: int
    offline: int = 0  # registered, not heard from within the heartbeat timeout


class ClusterSummary(View):
    name: str
    phase: ClusterPhase
    progress: int


class SiteSummary(View):
    name: str
    labels: dict[str, str] = {}
    wave: str | None
    state: str
    waiting: str
    revision: str | None  # served to every appliance; None when they differ
    targetRevision: str | None
    health: Health
    appliances: ApplianceCounts
    clusters: list[ClusterSummary]


class ApplianceView(View):
    id: str
    name: str | None = None  # its `name` tag: the display name
    site: str | None
    status: ApplianceStatus
    health: Health
    hostname: str | None = None
    ip: str | None = None
    arch: str | None = None
    agentVersion: str | None = None
    lastSeen: datetime | None = None
    servedDigest: str | None = None
    servedRevision: str | None = None
    targetDigest: str | None = None
    targetRevision: str | None = None
    appliedDigest: str | None = None
    waiting: str = ""
    error: str | None = None


class TaskView(View):
    appliance: str
    name: str
    state: TaskState
    progress: int
    message: str


class NodeView(View):
    appliance: str
    name: str
    phase: NodePhase


class ClusterView(ClusterSummary):
    description: str = ""
    appliances: list[str]
    nodes: list[NodeView]
    tasks: list[TaskView]
    message: str
    scans: list[ScanStatus] = []  # the last run of each scan type
    patches: list[PolicyRun] = []  # the last OS patch of each node
    backup: PolicyRun | None = None  # the last backup


class EventView(View):
    at: datetime
    level: str
    kind: str
    message: str
    appliance: str | None = None
    revision: str | None = None


class DeliveryView(View):
    """A result reported out: a commit status or a webhook notification."""

    destination: str
    kind: str  # commit-status | webhook
    event: str
    revision: str | None = None
    state: str  # sending | retrying | delivered | failed | superseded | dropped
    attempts: int
    detail: str
    updatedAt: datetime


class ReportingView(View):
    """How results reported out are going: the newest deliveries, and counts by state."""

    counts: dict[str, int]
    recent: list[DeliveryView]


class SiteView(View):
    name: str
    wave: str | None
    state: str
    waiting: str
    labels: dict[str, str]
    timezone: str | None
    windows: list[MaintenanceWindow] = []
    windowOpen: bool = False  # a maintenance window is open now
    nextWindow: datetime | None = None  # when the next one opens
    revision: str | None
    targetRevision: str | None
    health: Health
    appliances: list[ApplianceView]
    clusters: list[ClusterView]
    events: list[EventView]


class RevisionSummary(RevisionView):
    outcome: str  # good | failed
    errors: list[str]  # file:line: reason, for a failed revision
    rollout: str | None  # running | halted | done | superseded; None for a failed revision
    sitesChanged: int | None = None


class RevisionsView(View):
    revisions: list[RevisionSummary]  # newest first


class SourceView(View):
    """The remote repository as this server last fetched it."""

    url: str  # without a password
    branch: str
    ok: bool
    error: str | None = None  # why the last fetch failed: one line, no credential
    failingSince: datetime | None = None
    lastFetchedAt: datetime | None = None  # the last fetch that worked


class DecommissionedView(View):
    appliance: str
    site: str
    at: datetime


class FleetView(View):
    generatedAt: datetime
    revision: RevisionView | None
    lastFailure: FailureView | None
    source: SourceView | None = None  # a remote repository's fetches; None for a local one
    rollout: RolloutView | None
    sites: list[SiteSummary]
    discovered: list[ApplianceView]
    # removed from the fleet repository, its nodes gone and its token revoked
    decommissioned: list[DecommissionedView] = []
    events: list[EventView] = []  # the newest fleet-wide ones: rollout steps, operators' actions
    reporting: ReportingView | None = None  # None: nothing was ever reported out


class WaveView(View):
    """One wave of the rollout: its changed sites by where they stand."""

    name: str
    open: bool
    sites: int  # changed sites in this wave
    done: int
    failed: int
    soaking: int
    rolling: int  # released, applying
    window: int  # admitted, waiting for a maintenance window
    pending: int  # waiting for the wave to open (or held by a pause or halt)


class ApplianceTotals(View):
    """Every appliance of the fleet by status and health."""

    total: int  # declared in the repository
    healthy: int
    unhealthy: int  # reporting, and reporting unhealthy
    offline: int  # registered, not heard from within the heartbeat timeout
    unpaired: int  # declared, no agent registered yet
    discovered: int  # registered, not declared


class Overview(View):
    """The head of the fleet page: what runs, how its rollout goes, how healthy the fleet
    is; read from aggregates, so it costs the same at any fleet size."""

    generatedAt: datetime
    revision: RevisionView | None
    lastFailure: FailureView | None
    rollout: RolloutView | None
    waves: list[WaveView]
    halt: str | None = None  # why the rollout halted
    appliances: ApplianceTotals
    events: list[EventView] = []


class SiteList(View):
    """One page of the sites of the current rollout that match a filter."""

    sites: list[SiteSummary]
    total: int  # matching sites
    page: int  # 1-based
    pages: int
    perPage: int
    waves: list[str]  # every wave, for filters


class RevisionDetail(View):
    """One revision: its outcome, a page of the sites it changed and its rollout's
    timeline."""

    revision: RevisionSummary
    sites: list[str]  # this page of changed sites
    total: int
    page: int
    pages: int
    perPage: int
    timeline: list[EventView]  # oldest first
