"""The status report an agent posts to ``POST /v1/status``.

These models belong next to DesiredState in ``agent/contract.py``, which both sides share;
they live here until they move there. Sizes are bounded so a report cannot grow the store
without limit.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from agent.contract import Contract

ClusterPhase = Literal[
    "Pending", "Provisioning", "Running", "Deleting", "Deleted", "Aborted", "Error"
]
NodePhase = Literal["Pending", "Provisioning", "Running", "Deleting", "Deleted", "Error"]
TaskState = Literal["pending", "running", "done", "failed"]

Text = Annotated[str, Field(max_length=2000)]
Name = Annotated[str, Field(min_length=1, max_length=253)]
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]


class TaskStatus(Contract):
    """One provisioning step (create a node, apply manifests, ...)."""

    name: Name
    state: TaskState
    progress: Annotated[int, Field(ge=0, le=100)] = 0
    message: Text = ""


class NodeStatus(Contract):
    name: Name
    phase: NodePhase
    message: Text = ""


class ClusterStatus(Contract):
    name: Name
    phase: ClusterPhase
    nodes: Annotated[list[NodeStatus], Field(max_length=64)] = []
    tasks: Annotated[list[TaskStatus], Field(max_length=256)] = []
    message: Text = ""


class ApplyError(Contract):
    """Applying ``digest`` failed; the agent keeps running what it ran before."""

    digest: Digest
    message: Text


class ReportedEvent(Contract):
    key: Annotated[str, Field(min_length=1, max_length=128)] | None = None  # resent once
    level: Literal["info", "warning", "error"] = "info"
    message: Text


class StatusReport(Contract):
    appliedDigest: Digest | None = None
    error: ApplyError | None = None
    health: Literal["healthy", "unhealthy"]
    clusters: Annotated[list[ClusterStatus], Field(max_length=32)] = []
    events: Annotated[list[ReportedEvent], Field(max_length=256)] = []
    agentVersion: Annotated[str, Field(max_length=64)] | None = None
