"""An apply pass as the contract's StatusReport: per-cluster phase, tasks with progress,
events (drift, replacements), health. Called by the sync loop after every pass."""

from __future__ import annotations

from .contract import (
    ApplyError,
    ClusterStatus,
    ReportedEvent,
    StatusReport,
    TaskStatus,
)
from .link import AGENT_VERSION
from .results import ApplyResult, EventKind, Phase, TaskState

_LEVEL = {EventKind.DRIFT: "warning", EventKind.ABORTED: "warning"}


def status_report(result: ApplyResult, *, applied: str | None) -> StatusReport:
    """``applied`` is the digest now fully applied (None when none is yet)."""
    clusters = []
    events = []
    for cluster in result.clusters:
        tasks = [
            TaskStatus(
                name=task.progress[:253],
                state="done"
                if task.state is TaskState.DONE
                else "failed"
                if task.state is TaskState.FAILED
                else "pending",
                progress=100 if task.state is TaskState.DONE else 0,
                message=(task.error or "")[:2000],
            )
            for task in cluster.tasks[-256:]
        ]
        clusters.append(
            ClusterStatus(
                name=cluster.name,
                phase=str(cluster.phase),
                tasks=tasks,
                message=(cluster.message or str(cluster.reason or ""))[:2000],
            )
        )
        for event in cluster.events:
            events.append(
                ReportedEvent(
                    key=f"{event.at.isoformat()}/{event.cluster}/{event.kind}/{event.subject}"[
                        :128
                    ],
                    level=_LEVEL.get(event.kind, "info"),
                    message=f"{event.kind}: {event.message}"[:2000],
                )
            )
    failed = [c for c in result.clusters if c.phase is Phase.ERROR]
    error = None
    if failed:
        message = "; ".join(f"{c.name}: {c.message or c.reason}" for c in failed)
        error = ApplyError(digest=result.digest, message=message[:2000])
    return StatusReport(
        appliedDigest=applied,
        error=error,
        health="unhealthy" if failed else "healthy",
        clusters=clusters[:32],
        events=events[-256:],
        agentVersion=AGENT_VERSION,
    )
