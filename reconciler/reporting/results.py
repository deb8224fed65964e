"""What the rollout's events mean outside: each commit's fleet-level result, and the
notifications webhooks subscribe to.

Pure over :class:`~reconciler.store.EventRecord`; the rollout service hands over the events
each decision committed (:mod:`reconciler.rollout.service`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..store import EventRecord

Result = Literal["pending", "success", "failure", "superseded"]
NOTIFICATIONS = ("revision.failed", "rollout.halted", "rollout.completed", "wave.opened")

# event kind -> the commit's result, and the notification webhooks receive
_RESULTS: dict[str, Result] = {
    "revision-good": "pending",
    "wave-opened": "pending",
    "wave-promoted": "pending",
    "rollout-resumed": "pending",
    "rollout-done": "success",
    "rollout-halted": "failure",
    "revision-failed": "failure",
    "rollout-superseded": "superseded",
}
_NOTIFICATIONS = {
    "revision-failed": "revision.failed",
    "rollout-halted": "rollout.halted",
    "rollout-done": "rollout.completed",
    "wave-opened": "wave.opened",
    "wave-promoted": "wave.opened",
}
_DESCRIPTIONS: dict[Result, str] = {
    "pending": "rolling out",
    "success": "every wave is done",
    "failure": "failed",
    "superseded": "superseded before every wave was done",
}


@dataclass(frozen=True)
class CommitResult:
    """A commit's result across the fleet, as a forge shows it beside the commit."""

    revision: str
    result: Result
    description: str  # why, in a line


@dataclass(frozen=True)
class Notification:
    event: str  # one of NOTIFICATIONS
    revision: str | None
    at: float
    level: str
    message: str


def commit_result(event: EventRecord) -> CommitResult | None:
    """The result an event sets on its commit; None for events that set none."""
    result = _RESULTS.get(event.kind)
    if result is None or event.revision is None:
        return None
    return CommitResult(event.revision, result, f"{_DESCRIPTIONS[result]}: {event.message}")


def notification(event: EventRecord) -> Notification | None:
    name = _NOTIFICATIONS.get(event.kind)
    if name is None:
        return None
    return Notification(name, event.revision, event.at, event.level, event.message)
