"""An apply pass and the clusters' last day-2 runs as the contract's StatusReport."""

from __future__ import annotations

from agent.apply.passes import ApplyResult, EventKind, Phase, TaskState
from agent.contract import (
    ApplyError,
    ClusterStatus,
    PolicyRun,
    ReportedEvent,
    ScanStatus,
    StatusReport,
    TaskStatus,
)
from agent.daytwo.records import DayTwoStatus, Finding
from agent.link.client import AGENT_VERSION

_LEVEL = {EventKind.DRIFT: "warning", EventKind.ABORTED: "warning"}


def day_two(status: DayTwoStatus) -> dict[str, object]:
    """A cluster's last scans, patches and backup as ClusterStatus fields."""
    scans = [
        ScanStatus(
            scan=scan.scan,
            tool=scan.tool,
            state=str(scan.state),
            at=scan.finished_at,
            passed=scan.summary.passed if scan.summary else 0,
            warned=scan.summary.warned if scan.summary else 0,
            failed=scan.summary.failed if scan.summary else 0,
            findings=[_line(f) for f in (scan.summary.findings if scan.summary else ())][:20],
            error=(scan.error or "")[:2000],
            toolVersion=scan.version[:64],
            benchmark=scan.benchmark[:253],
            errored=scan.summary.errored if scan.summary else 0,
            errors=[_line(f) for f in (scan.summary.errors if scan.summary else ())][:20],
        )
        for scan in status.scans
    ]
    patches = [
        PolicyRun(
            name=patch.node,
            state=str(patch.state),
            at=patch.at,
            detail=(patch.error or f"{patch.previous or '?'} -> {patch.version or '?'}")[:2000],
        )
        for patch in status.patches
    ][:64]
    backup = status.last_backup
    return {
        "scans": scans[:8],
        "patches": patches,
        "backup": None
        if backup is None
        else PolicyRun(
            name=backup.id,
            state=str(backup.state),
            at=backup.finished_at,
            detail=(backup.error or backup.location)[:2000],
        ),
    }


def _line(finding: Finding) -> str:
    said = f"{finding.status} {finding.id}" if finding.id else finding.status
    return f"{said}: {finding.title}"[:2000]


def status_report(
    result: ApplyResult, *, applied: str | None, day2: tuple[DayTwoStatus, ...] = ()
) -> StatusReport:
    """``applied`` is the digest now fully applied (None when none is yet); ``day2`` the
    clusters' last patches, scans and backups."""
    policies = {status.cluster: day_two(status) for status in day2}
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
                **policies.get(cluster.name, {}),
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
