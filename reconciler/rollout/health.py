"""How an appliance stands against the digest it was released: from its latest report.

``applied``   the report names the digest as applied, health is healthy, and every cluster
              (and every node listed) is Running, or Deleted for clusters being removed
``failed``    the agent reported an error applying the digest, or applied it and is
              unhealthy, or a cluster is in Error or Aborted
``pending``   anything else: not applied yet, still provisioning, no report

A report older than the heartbeat timeout is ``stale``: it still tells what was applied,
but it cannot prove the appliance healthy *now*, which the soak gate needs.

A digest is *proven* on an appliance once it has run it healthy, without a break, for the
soak, as its reports show (:func:`next_streak`, :func:`proof`). Only a proven digest counts
as "unchanged" for the waves after it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from pydantic import ValidationError

from agent.contract import StatusReport

from ..store import ReportRecord, Streak

Standing = Literal["applied", "failed", "pending"]
SETTLED_PHASES = {"Running", "Deleted"}
FAILED_PHASES = {"Error", "Aborted"}


@dataclass(frozen=True)
class Observation:
    standing: Standing
    fresh: bool
    detail: str


def parse_report(record: ReportRecord) -> StatusReport | None:
    try:
        return StatusReport.model_validate(record.body)
    except ValidationError:
        return None


def observe(
    digest: str | None, record: ReportRecord | None, *, now: float, heartbeat_timeout: float
) -> Observation:
    """``digest`` None means the appliance is to run nothing: released is enough."""
    if digest is None:
        return Observation("applied", True, "no state to apply")
    if record is None:
        return Observation("pending", False, "no status report yet")
    fresh = now - record.received_at <= heartbeat_timeout
    report = parse_report(record)
    if report is None:
        return Observation("pending", fresh, "unreadable status report")
    short = digest[7:19]
    if report.error is not None and report.error.digest == digest:
        return Observation("failed", fresh, f"apply of {short} failed: {report.error.message}")
    if report.appliedDigest != digest:
        return Observation("pending", fresh, f"not yet applied {short}")
    broken = [c for c in report.clusters if c.phase in FAILED_PHASES]
    if broken:
        c = broken[0]
        return Observation("failed", fresh, f"cluster {c.name} is {c.phase}: {c.message}".strip())
    if report.health != "healthy":
        return Observation("failed", fresh, f"unhealthy after applying {short}")
    for cluster in report.clusters:
        if cluster.phase not in SETTLED_PHASES:
            return Observation("pending", fresh, f"cluster {cluster.name} is {cluster.phase}")
        waiting = [n for n in cluster.nodes if n.phase != "Running"]
        if cluster.phase == "Running" and waiting:
            node = waiting[0]
            return Observation("pending", fresh, f"node {node.name} is {node.phase}")
    return Observation("applied", fresh, "applied and healthy")


def ran_healthy(report: StatusReport) -> str | None:
    """The digest ``report`` shows applied and run healthy (every cluster settled, no error
    applying it); None when it shows none."""
    digest = report.appliedDigest
    if report.health != "healthy" or digest is None:
        return None
    if report.error is not None and report.error.digest == digest:
        return None
    if any(c.phase not in SETTLED_PHASES for c in report.clusters):
        return None
    return digest


def next_streak(
    before: Streak | None, appliance: str, healthy: str | None, *, now: float
) -> Streak | None:
    """The streak after a report that shows ``healthy`` run healthy (None: it shows none).

    A report that is not healthy breaks the run; a healthy one on the same digest resumes
    it from now. A proof outlives a break, but not a change of digest.
    """
    if healthy is None:
        return replace(before, since=None) if before is not None and before.since else before
    if before is None or before.digest != healthy:
        return Streak(appliance=appliance, digest=healthy, since=now, proven_at=None)
    return before if before.since is not None else replace(before, since=now)


def proof(
    streak: Streak | None, digest: str | None, *, now: float, soak: float, fresh: bool
) -> float | None:
    """When ``digest`` was proven on the streak's appliance: its proof time, ``now`` when the
    unbroken run on it lasts the soak at a fresh report, None while it is not proven.
    ``digest`` None (the appliance is to run nothing) needs no proof."""
    if digest is None:
        return now
    if streak is None or streak.digest != digest:
        return None
    if streak.proven_at is not None:
        return streak.proven_at
    if streak.since is not None and fresh and now - streak.since >= soak:
        return now
    return None
