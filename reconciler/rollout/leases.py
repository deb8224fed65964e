"""Reboot leases: one appliance of a cluster at a time may take its control-plane nodes down
(an OS patch's reboots), so a control plane spread over appliances keeps its quorum.

The same gate as a rollout's turns, asked for by the agent: :class:`RolloutService` calls
:func:`grant` and :func:`give_back` inside one exclusive transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..store import LeaseRecord, Transaction
from .errors import NotMember

MAX_SECONDS = 3600.0  # a lease lasts at most an hour; a crashed holder frees it by then


@dataclass(frozen=True)
class Grant:
    granted: bool
    holder: str
    expires_at: float


def grant(
    tx: Transaction, appliance: str, cluster: str, *, purpose: str, seconds: float, now: float
) -> Grant:
    """The lease of ``cluster`` for ``appliance``: granted (or renewed) when no other member
    holds one that has not expired; otherwise who holds it and until when."""
    site = _site_serving(tx, appliance, cluster)
    held = tx.leases.get(site, cluster)
    if held is not None and held.holder != appliance and held.expires_at > now:
        return Grant(False, held.holder, held.expires_at)
    lease = LeaseRecord(
        site=site,
        cluster=cluster,
        holder=appliance,
        purpose=purpose,
        granted_at=now if held is None or held.holder != appliance else held.granted_at,
        expires_at=now + min(max(seconds, 1.0), MAX_SECONDS),
    )
    tx.leases.put(lease)
    return Grant(True, appliance, lease.expires_at)


def give_back(tx: Transaction, appliance: str, cluster: str) -> bool:
    """Release the lease ``appliance`` holds on ``cluster``; False when it held none."""
    assignment = tx.assignments.get(appliance)
    if assignment is None:
        return False
    return tx.leases.drop(assignment.site, cluster, holder=appliance)


def _site_serving(tx: Transaction, appliance: str, cluster: str) -> str:
    assignment = tx.assignments.get(appliance)
    content = (
        tx.documents.get(assignment.served_digest)
        if assignment is not None and assignment.declared and assignment.served_digest
        else None
    )
    names = {c.get("name") for c in json.loads(content).get("clusters", [])} if content else set()
    if assignment is None or cluster not in names:
        raise NotMember(f"{appliance} is not served cluster {cluster!r}")
    return assignment.site
