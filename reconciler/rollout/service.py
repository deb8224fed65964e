"""The rollout service: the reconcile loop hands it whole releases, agents hand it status
reports, and it decides what each appliance is served and when.

Callers::

    service.record_release(release)           a good revision (the loop)
    service.record_failure(revision, errors)   a revision that failed validation/rendering
    service.accept_report(appliance, report)   an agent's status (the API)
    service.tick()                             re-evaluate gates (a timer; after reports)

Every decision is taken inside one exclusive store transaction and written there, so a
restart (or a second replica on PostgreSQL) continues from the stored state. Appliances
whose served state changed are notified after the commit, waking their long-polls.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from ..store import EventRecord, ReportRecord, RevisionRecord, Store, Transaction
from ..store.records import Level
from .clocks import Clock, epoch, system_clock
from .errors import InvalidRelease
from .health import SETTLED_PHASES
from .notifications import Notifier
from .progress import SETTLED, Progress, Snapshot, advance
from .publishing import plan_release
from .releases import Release
from .reports import StatusReport

MAX_ERRORS = 200
MAX_ERROR_CHARS = 1000


class RolloutService:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock = system_clock,
        notifier: Notifier | None = None,
        heartbeat_timeout: float = 90.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier or Notifier()
        self.heartbeat_timeout = heartbeat_timeout
        self._lock = threading.Lock()  # one decision at a time in this process

    # -- what the reconcile loop calls --------------------------------------------------
    def record_release(self, release: Release, *, reconcile_seconds: float | None = None) -> bool:
        """Record a good revision and start its rollout; supersedes open rollouts.

        Returns False when the revision was already recorded good (nothing changes, so the
        loop may hand the same release again after a restart). Raises InvalidRelease.
        """
        problems = release.problems()
        if problems:
            raise InvalidRelease("; ".join(problems[:10]))
        with self._lock, self.store.write(exclusive=True) as tx:
            now = epoch(self.clock)
            known = tx.revisions.get(release.revision)
            if known is not None and known.outcome == "good":
                return False
            if known is not None:
                tx.revisions.set_outcome(release.revision, "good", errors=(), at=now)
                record = tx.revisions.get(release.revision)
                assert record is not None
            else:
                record = tx.revisions.add(
                    RevisionRecord(release.revision, "good", (), now, reconcile_seconds)
                )
            events = self._supersede(tx, release.revision, now)
            current = {a.appliance: a for a in tx.assignments.all()}
            served = {a.served_digest for a in current.values() if a.served_digest}
            wanted = {
                (appliance, state.digest)
                for site in release.sites.values()
                for appliance, state in site.states.items()
            }
            plan = plan_release(
                release,
                seq=record.seq,
                current=current,
                served_content={d: c for d in served if (c := tx.documents.get(d)) is not None},
                healthy=tx.reports.healthy_pairs(wanted),
                now=now,
            )
            assert plan.rollout is not None
            tx.documents.put(plan.documents, at=now)
            tx.rollouts.add(plan.rollout)
            tx.rollouts.add_sites(plan.sites)
            tx.rollouts.add_targets(plan.targets)
            for assignment in plan.assignments:
                tx.assignments.put(assignment)
            changed = sum(s.changed for s in plan.sites)
            events.append(
                self._event(
                    now,
                    "info",
                    "revision-good",
                    f"revision {release.revision[:7]} recorded: {changed} of "
                    f"{len(plan.sites)} sites change",
                    revision=release.revision,
                )
            )
            tx.events.add([*events, *plan.events])
            progress = self._advance(tx, release.revision)
            tx.events.prune()
        self.notifier.notify([*plan.removed, *(t.appliance for t in progress.released)])
        return True

    def record_failure(
        self, revision: str, errors: Sequence[str], *, reconcile_seconds: float | None = None
    ) -> bool:
        """Record a revision that failed validation or rendering. Nothing served changes.
        Returns False when the revision was already recorded."""
        kept = tuple(e[:MAX_ERROR_CHARS] for e in errors[:MAX_ERRORS])
        if len(errors) > MAX_ERRORS:
            kept += (f"... and {len(errors) - MAX_ERRORS} more",)
        with self._lock, self.store.write(exclusive=True) as tx:
            if tx.revisions.get(revision) is not None:
                return False
            now = epoch(self.clock)
            tx.revisions.add(RevisionRecord(revision, "failed", kept, now, reconcile_seconds))
            first = f": {kept[0]}" if kept else ""
            message = f"revision {revision[:7]} failed with {len(errors)} errors{first}"
            tx.events.add(
                [self._event(now, "error", "revision-failed", message, revision=revision)]
            )
        return True

    def tick(self) -> None:
        """Re-evaluate the gates of the running rollout (soak, windows, turns)."""
        with self._lock, self.store.write(exclusive=True) as tx:
            running = [r for r in tx.rollouts.open() if r.state == "running"]
            released: list[str] = []
            for rollout in running:
                released += [t.appliance for t in self._advance(tx, rollout.revision).released]
        self.notifier.notify(released)

    # -- what the API calls -------------------------------------------------------------
    def accept_report(self, appliance: str, report: StatusReport) -> None:
        """Keep an agent's latest status; re-evaluate gates when it may move the rollout."""
        now = epoch(self.clock)
        healthy = report.health == "healthy" and not any(
            c.phase not in SETTLED_PHASES for c in report.clusters
        )
        with self.store.write() as tx:
            tx.reports.put(
                ReportRecord(
                    appliance=appliance,
                    received_at=now,
                    applied_digest=report.appliedDigest,
                    healthy=healthy,
                    body=report.model_dump(mode="json"),
                )
            )
            tx.agents.touch(appliance, at=now)
            if healthy and report.appliedDigest is not None:
                tx.reports.mark_healthy(appliance, report.appliedDigest, at=now)
            assignment = tx.assignments.get(appliance)
            site = assignment.site if assignment else None
            tx.events.add(
                EventRecord(
                    at=now,
                    level=e.level,
                    kind="agent",
                    message=e.message,
                    site=site,
                    appliance=appliance,
                    key=e.key,
                )
                for e in report.events
            )
            moves = self._moves_rollout(tx, appliance)
        if moves:
            self.tick()

    # -- internals ----------------------------------------------------------------------
    def _advance(self, tx: Transaction, revision: str) -> Progress:
        rollout = tx.rollouts.get(revision)
        assert rollout is not None
        targets = tx.rollouts.targets(revision)
        snapshot = Snapshot(
            rollout=rollout,
            sites=tx.rollouts.sites(revision),
            targets=targets,
            reports=tx.reports.for_appliances(t.appliance for t in targets if t.changed),
            now=self.clock(),
            heartbeat_timeout=self.heartbeat_timeout,
        )
        progress = advance(snapshot)
        now = snapshot.now.timestamp()
        tx.rollouts.save(progress.rollout)
        for site in progress.sites:
            tx.rollouts.save_site(site)
        for target in progress.targets:
            tx.rollouts.save_target(target)
        for target in progress.released:
            assignment = tx.assignments.get(target.appliance)
            if assignment is not None:
                tx.assignments.put(
                    replace(
                        assignment,
                        served_digest=target.digest,
                        served_revision=target.revision if target.digest else None,
                        served_at=now,
                        declared=target.digest is not None,
                    )
                )
        tx.events.add(progress.events)
        return progress

    def _supersede(self, tx: Transaction, revision: str, now: float) -> list[EventRecord]:
        events = []
        for rollout in tx.rollouts.open():
            tx.rollouts.save(replace(rollout, state="superseded", updated_at=now, finished_at=now))
            message = f"rollout of {rollout.revision[:7]} superseded by {revision[:7]}"
            events.append(
                self._event(now, "info", "rollout-superseded", message, revision=rollout.revision)
            )
        return events

    def _moves_rollout(self, tx: Transaction, appliance: str) -> bool:
        """Whether a report from ``appliance`` can change a gate: it is a changed target of
        the running rollout, in a site that has not settled yet."""
        for rollout in tx.rollouts.open():
            target = tx.rollouts.target(rollout.revision, appliance)
            if rollout.state != "running" or target is None or not target.changed:
                continue
            site = tx.rollouts.site(rollout.revision, target.site)
            if site is not None and site.state not in SETTLED:
                return True
        return False

    @staticmethod
    def _event(
        now: float, level: Level, kind: str, message: str, *, revision: str | None = None
    ) -> EventRecord:
        return EventRecord(at=now, level=level, kind=kind, message=message, revision=revision)
