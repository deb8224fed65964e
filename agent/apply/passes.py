"""What one apply pass did, as data: each cluster's phase, tasks and events, and the progress
reported while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from agent.drivers import Reason


class Phase(StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    RUNNING = "Running"
    DELETING = "Deleting"
    DELETED = "Deleted"
    ABORTED = "Aborted"
    ERROR = "Error"


class TaskState(StrEnum):
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class EventKind(StrEnum):
    CREATED = "created"
    REPLACED = "replaced"
    RESTARTED = "restarted"
    REMOVED = "removed"
    DRIFT = "drift"
    RECOVERED = "recovered"
    DELETED = "deleted"
    ABORTED = "aborted"


@dataclass(frozen=True)
class Task:
    """One planned step of a cluster, e.g. ``create node pos-main-1 2/3``."""

    cluster: str
    index: int
    total: int
    title: str
    state: TaskState
    error: str | None = None

    @property
    def progress(self) -> str:
        return f"{self.title} {self.index}/{self.total}"


@dataclass(frozen=True)
class Event:
    at: datetime
    cluster: str
    kind: EventKind
    subject: str
    message: str


@dataclass(frozen=True)
class ClusterResult:
    name: str
    phase: Phase
    tasks: tuple[Task, ...] = ()
    events: tuple[Event, ...] = ()
    reason: Reason | None = None
    message: str | None = None
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.phase in (Phase.RUNNING, Phase.DELETED, Phase.ABORTED)


@dataclass(frozen=True)
class ApplyResult:
    appliance: str
    revision: str
    digest: str
    started_at: datetime
    finished_at: datetime
    clusters: tuple[ClusterResult, ...]
    recovered: tuple[Event, ...] = ()

    @property
    def ok(self) -> bool:
        return all(cluster.ok for cluster in self.clusters)

    def cluster(self, name: str) -> ClusterResult:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "appliance": self.appliance,
            "revision": self.revision,
            "digest": self.digest,
            "startedAt": self.started_at.isoformat(),
            "finishedAt": self.finished_at.isoformat(),
            "ok": self.ok,
            "recovered": [_event_json(event) for event in self.recovered],
            "clusters": [
                {
                    "name": cluster.name,
                    "phase": str(cluster.phase),
                    "reason": None if cluster.reason is None else str(cluster.reason),
                    "message": cluster.message,
                    "retryable": cluster.retryable,
                    "tasks": [
                        {
                            "title": task.title,
                            "progress": task.progress,
                            "state": str(task.state),
                            "error": task.error,
                        }
                        for task in cluster.tasks
                    ],
                    "events": [_event_json(event) for event in cluster.events],
                }
                for cluster in self.clusters
            ],
        }


@dataclass(frozen=True)
class Progress:
    """A step of a pass moving on: ``intent`` (journaled, about to run), a driver stage such
    as ``created``, then ``done`` or ``failed``."""

    cluster: str
    phase: Phase
    title: str
    index: int
    total: int
    stage: str


def _event_json(event: Event) -> dict[str, str]:
    return {
        "at": event.at.isoformat(),
        "cluster": event.cluster,
        "kind": str(event.kind),
        "subject": event.subject,
        "message": event.message,
    }
