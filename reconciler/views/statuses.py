"""The statuses of DESIGN.md, derived from what the store holds.

Appliance: Unpaired (in Git, agent never seen) → Ready (agent registered) → In-Use (runs a
cluster); Discovered when an agent registered an appliance the repository does not declare;
Decommissioning once Git dropped it, until it reports its nodes gone (then it is listed
decommissioned and its token revoked).
Health: healthy while heartbeats (status reports) are recent and say healthy.
Cluster: Pending → Provisioning → Running; Deleting → Deleted; Aborted; Error; a cluster
spanning several appliances takes the most telling phase any of them reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from agent.contract import ClusterPhase, ClusterStatus, StatusReport

from ..store import AgentRecord, Assignment, ReportRecord

ApplianceStatus = Literal[
    "Unpaired", "Ready", "In-Use", "Discovered", "Decommissioning", "Decommissioned"
]
Health = Literal["healthy", "unhealthy", "unknown"]


def appliance_status(
    assignment: Assignment | None, agent: AgentRecord | None, report: StatusReport | None
) -> ApplianceStatus:
    in_use = report is not None and any(c.phase != "Deleted" for c in report.clusters)
    if assignment is not None and not assignment.declared:
        if assignment.decommissioned_at is not None:
            return "Decommissioned"  # registered again since: listed, served nothing new
        if assignment.served_digest:
            return "Decommissioning"  # removed from Git: served an empty state until its nodes go
    return status_of(
        declared=assignment is not None and assignment.declared,
        registered=agent is not None,
        in_use=in_use,
    )


def status_of(*, declared: bool, registered: bool, in_use: bool) -> ApplianceStatus:
    if not declared:
        return "Discovered"
    if not registered:
        return "Unpaired"
    return "In-Use" if in_use else "Ready"


def appliance_health(
    agent: AgentRecord | None, report: ReportRecord | None, *, now: float, timeout: float
) -> Health:
    return health_of(
        registered=agent is not None,
        fresh=agent is not None and now - agent.last_seen <= timeout,
        healthy=report.healthy if report is not None else None,
    )


def health_of(*, registered: bool, fresh: bool, healthy: bool | None) -> Health:
    """``healthy``: what the latest report says (None: no report yet)."""
    if not registered:
        return "unknown"
    if not fresh or healthy is False:
        return "unhealthy"
    return "healthy"


def cluster_phase(expected: int, reported: Sequence[ClusterStatus]) -> ClusterPhase:
    """``expected``: how many appliances run the cluster per the repository (0 when it is
    no longer declared); ``reported``: what those appliances said about it."""
    phases = {c.phase for c in reported}
    for telling in ("Error", "Aborted", "Deleting"):
        if telling in phases:
            return telling
    if phases == {"Deleted"}:
        return "Deleted"
    if not reported:
        return "Pending"
    if phases == {"Running"} and len(reported) >= expected:
        return "Running"
    if phases <= {"Pending"}:
        return "Pending"
    return "Provisioning"


def cluster_progress(phase: ClusterPhase, reported: Sequence[ClusterStatus]) -> int:
    """Percent done: the mean progress of the provisioning tasks reported."""
    if phase in ("Running", "Deleted"):
        return 100
    tasks = [t for c in reported for t in c.tasks]
    if not tasks:
        return 0
    return round(sum(100 if t.state == "done" else t.progress for t in tasks) / len(tasks))
