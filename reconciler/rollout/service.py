"""The rollout service: the reconcile loop hands it whole releases, agents hand it status
reports, and it decides what each appliance is served and when.

Callers::

    service.record_release(release)           a good revision (the loop)
    service.record_failure(revision, errors)   a revision that failed validation/rendering
    service.accept_report(appliance, report)   an agent's status (the API)
    service.tick()                             re-evaluate gates (a timer; after reports)
    service.pause(by) / resume(by) / promote(wave, by)   an admin's hand on the rollout

A halt outlives newer revisions until one changes the state of every failing site (or an
admin resumes); a pause outlives them until an admin resumes.

Every decision is taken inside one exclusive store transaction and written there, so a
restart (or a second replica on PostgreSQL) continues from the stored state. Appliances
whose served state changed are notified after the commit, waking their long-polls, and the
events the decision recorded go to ``on_events`` (the results reported to the forge and to
webhooks), which must return at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import replace

from agent.contract import StatusReport

from ..clocks import Clock, epoch, system_clock
from ..collector import paused_collector
from ..delivery import WAKE_BATCH, Notifier, joins_changed
from ..store import (
    Assignment,
    ChangeRecord,
    EventRecord,
    GroupCommit,
    ReportRecord,
    RevisionRecord,
    RolloutRecord,
    Store,
    StoreError,
    Transaction,
    amended,
)
from ..store.records import Level
from .errors import InvalidRelease, RolloutConflict
from .health import next_streak, ran_healthy
from .leases import Grant, give_back, grant
from .progress import SETTLED, Snapshot, advance
from .publishing import ReleasePlan, ServedClusters, new_documents, plan_release
from .releases import Release

log = logging.getLogger(__name__)

# how many status reports at most wait for the tick that covers them (see tick_wanted)
TICK_WAITERS = 4
# seconds between the ticks reports ask for while more keep arriving
TICK_SPACING = 1.0
# seconds at most that status reports wait to be written while a wave is handed on
REPORTS_HELD = 30.0
# seconds at most that a wave's bookkeeping waits for its woken agents to be answered
ANSWERS_AWAITED = 10.0
PAUSED = "paused"
CHANGES_KEPT = 600.0  # seconds the change log keeps rows for replicas that fall behind
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
        on_events: Callable[[list[EventRecord]], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier or Notifier()
        self.on_events = on_events
        self.heartbeat_timeout = heartbeat_timeout
        self._lock = threading.Lock()  # one decision at a time in this process
        # Ticks asked for by status reports are coalesced: while one runs, later requests
        # share the next one instead of queueing a tick each (see tick_wanted).
        self._ticks = threading.Condition()
        self._ticks_asked = 0
        self._ticks_done = 0
        self._tick_waiters = 0
        self._ticking = False
        # while the reconcile loop renders a revision, ticks wait (see deferring_ticks)
        self._deferring = 0
        self._deferred = False
        self._handing_on = 0  # waves being handed on to their agents (see _publish)
        self._reports: GroupCommit[tuple[str, StatusReport], bool]
        self._reports = GroupCommit(self._record_reports)

    # -- what the reconcile loop calls --------------------------------------------------
    @contextmanager
    def deferring_ticks(self) -> Iterator[None]:
        """Ticks asked for inside (the timer's, the reports') wait until the block ends,
        then one runs. The reconcile loop renders a revision inside: a tick over ten
        thousand sites meanwhile took seconds and, fighting the render for the interpreter,
        doubled it, while the release it was rendering supersedes what the tick moved
        (and a revision that fails leaves the rollout its tick a few seconds late)."""
        with self._ticks:
            self._deferring += 1
        try:
            yield
        finally:
            with self._ticks:
                self._deferring -= 1
                due = self._deferred and not self._deferring
                if due:
                    self._deferred = False
            if due:
                try:
                    self.tick()
                except StoreError as e:  # temporary: the timer's next tick tries again
                    log.warning("the rollout tick a reconcile deferred failed: %s", e)

    def record_release(self, release: Release, *, reconcile_seconds: float | None = None) -> bool:
        """Record a good revision and start its rollout; supersedes open rollouts.

        Returns False when the revision was already recorded good (nothing changes, so the
        loop may hand the same release again after a restart). Raises InvalidRelease.
        """
        problems = release.problems()
        if problems:
            raise InvalidRelease("; ".join(problems[:10]))
        with self._decision() as tx:
            # a release steps the rollout with every report written before it began: the
            # ticks those reports asked for while the revision rendered are covered, and
            # run only if it records nothing (one over ten thousand sites took a second)
            with self._ticks:
                deferred, self._deferred = self._deferred, False
            recorded = None
            try:
                recorded = self._release(tx, release, reconcile_seconds)
            finally:
                if recorded is None:
                    with self._ticks:
                        self._deferred = self._deferred or deferred
            if recorded is None:
                return False
        changes, contents = recorded
        # only the signatures of documents checked against their digests and stored
        signatures = {d: s for d, s in release.signatures.items() if d in contents}
        with self.notifier.offering(release.revision, contents, signatures):
            self._publish(changes)
        return True

    def _release(
        self, tx: Transaction, release: Release, reconcile_seconds: float | None
    ) -> tuple[list[ChangeRecord], Mapping[str, bytes]] | None:
        """:meth:`record_release`'s decision: the changes it serves and the bytes of the
        documents it stored (checked against their digests); None when the revision was
        recorded good before."""
        now = epoch(self.clock)
        # the revision, recorded once
        record = self._record_good(tx, release, now, reconcile_seconds)
        if record is None:
            return None
        # open rollouts end: the newest revision wins, but a halt it does not fix holds
        before = self._supersede(tx, release.revision, now)
        # what changes, against what every appliance runs and is served now
        plan = self._plan(tx, release, seq=record.seq, now=now)
        if before is not None:
            self._carry_over(tx, before, plan)
        # the documents, the rollout rows and the new targets
        self._store_plan(tx, plan, now=now)
        # every cluster's join secret, made once (served with the states, never in them)
        tx.joins.keep(release.clusters(), at=now)
        # the rollout's first step: the first wave, reverts, unchanged sites
        removed = [
            ChangeRecord(
                "served",
                a.appliance,
                at=now,
                digest=a.served_digest,
                revision=a.served_revision,
            )
            for a in plan.assignments
            if a.appliance in plan.removed
        ]
        tx.changes.add(removed)
        changes = removed + self._advance(tx, release.revision)
        tx.events.prune()
        tx.changes.prune(before=now - CHANGES_KEPT)
        return changes, plan.encoded

    def _publish(self, changes: Sequence[ChangeRecord]) -> None:
        """Hand ``changes`` on and wake their agents. While a wave's worth is handed on
        and until its woken agents are answered (at most :data:`ANSWERS_AWAITED`), the
        ticks reports ask for, the writing of status reports and the documents made ahead
        wait: each tick reads every site and target of the rollout, and beside the
        thousands of agents being woken and answered both took the interpreter from them
        (the first agents' reports came in while the last were still to be answered)."""
        if len(changes) < WAKE_BATCH:
            self.notifier.publish(changes)
            return
        with self._ticks:
            self._handing_on += 1
        try:
            # the documents made ahead wait too: those still to make, the hand-over makes
            with self.deferring_ticks(), self.notifier.deciding():
                self.notifier.publish(changes)
                self.notifier.answered(ANSWERS_AWAITED)
        finally:
            with self._ticks:
                self._handing_on -= 1
                self._ticks.notify_all()

    def record_failure(
        self,
        revision: str,
        errors: Sequence[str],
        *,
        reconcile_seconds: float | None = None,
        author: str = "",
        subject: str = "",
    ) -> bool:
        """Record a revision that failed validation or rendering. Nothing served changes.
        Returns False when the revision was already recorded."""
        kept = tuple(e[:MAX_ERROR_CHARS] for e in errors[:MAX_ERRORS])
        if len(errors) > MAX_ERRORS:
            kept += (f"... and {len(errors) - MAX_ERRORS} more",)
        with self._decision() as tx:
            if tx.revisions.get(revision) is not None:
                return False
            now = epoch(self.clock)
            record = RevisionRecord(revision, "failed", kept, now, reconcile_seconds)
            tx.revisions.add(replace(record, author=author, subject=subject))
            first = f": {kept[0]}" if kept else ""
            message = f"revision {revision[:7]} failed with {len(errors)} errors{first}"
            tx.events.add(
                [self._event(now, "error", "revision-failed", message, revision=revision)]
            )
        return True

    def tick(self) -> None:
        """Re-evaluate the gates of the running rollout (soak, windows, turns); deferred
        while :meth:`deferring_ticks` holds them."""
        with self._ticks:
            if self._deferring:
                self._deferred = True
                return
        # the work that can wait goes on while the tick reads (see _advance): with no
        # soak, the reads of the tick that opens a wave are when its documents get made
        with self._decision(reading_first=True) as tx:
            running = [r for r in tx.rollouts.open() if r.state == "running"]
            changes: list[ChangeRecord] = []
            for rollout in running:
                changes += self._advance(tx, rollout.revision)
            with self.notifier.deciding():
                tx.events.prune()
        self._publish(changes)

    # -- what an admin calls ------------------------------------------------------------
    def pause(self, *, by: str) -> bool:
        """Release nothing new (reverts still go) until :meth:`resume`; survives newer
        revisions and restarts. False when it was paused already."""
        with self._decision() as tx:
            now = epoch(self.clock)
            if self._paused(tx):
                return False
            tx.controls.set(PAUSED, True, by=by, at=now)
            tx.events.add(
                [self._event(now, "warning", "rollout-paused", f"rollout paused by {by}")]
            )
        return True

    def resume(self, *, by: str) -> bool:
        """Lift a pause and a halt: the failures that halted the rollout are accepted and
        the waves go on. False when there was neither."""
        with self._decision() as tx:
            now = epoch(self.clock)
            paused = self._paused(tx)
            halted = [r for r in tx.rollouts.open() if r.state == "halted"]
            if not paused and not halted:
                return False
            if paused:
                tx.controls.set(PAUSED, False, by=by, at=now)
            for rollout in halted:
                accepted = tuple(sorted({*rollout.accepted, *rollout.failing}))
                tx.rollouts.save(
                    replace(rollout, state="running", accepted=accepted, updated_at=now)
                )
            lifted = " and ".join(w for w, on in (("pause", paused), ("halt", halted)) if on)
            message = f"rollout resumed by {by} (lifts the {lifted})"
            if halted:
                message += f"; failures accepted: {', '.join(halted[-1].failing) or 'none'}"
            revision = halted[-1].revision if halted else None  # rolling again
            tx.events.add(
                [self._event(now, "warning", "rollout-resumed", message, revision=revision)]
            )
            changes = self._advance_open(tx)
        self._publish(changes)
        return True

    def promote(self, wave: str, *, by: str) -> None:
        """Open ``wave`` (and those before it) now, skipping the soak of the wave before.
        Raises RolloutConflict when no rollout runs, it is halted, or there is no such
        wave or it is open already."""
        with self._decision() as tx:
            now = epoch(self.clock)
            running = tx.rollouts.open()
            if not running:
                raise RolloutConflict("no rollout is in progress")
            rollout = running[-1]
            if rollout.state == "halted":
                raise RolloutConflict("the rollout is halted: resume it first")
            names = [str(w["name"]) for w in rollout.waves]
            if wave not in names:
                raise RolloutConflict(f"no wave {wave!r} (waves: {', '.join(names)})")
            index = names.index(wave)
            if index <= rollout.wave:
                raise RolloutConflict(f"wave {wave} is open already")
            tx.rollouts.save(replace(rollout, wave=index, updated_at=now))
            message = f"wave {wave} of {rollout.revision[:7]} promoted by {by}"
            tx.events.add(
                [self._event(now, "warning", "wave-promoted", message, revision=rollout.revision)]
            )
            changes = self._advance_open(tx)
        self._publish(changes)

    def paused(self) -> bool:
        with self.store.read() as tx:
            return self._paused(tx)

    # -- what the API calls -------------------------------------------------------------
    def accept_report(self, appliance: str, report: StatusReport) -> None:
        """Keep an agent's latest status; re-evaluate gates when it may move the rollout.
        Reports that arrive together are written in one transaction (a wave's agents
        report at once)."""
        if self._reports.submit((appliance, report)):
            self.tick_wanted()

    def report_soon(self, appliance: str, report: StatusReport) -> asyncio.Future[bool]:
        """:meth:`accept_report`'s write for a caller on an event loop (the API): a thread
        of the service's own writes it with the reports arriving together, and the future,
        of the caller's loop, holds whether it may move the rollout (then call
        :meth:`tick_wanted`). The futures of a batch are settled with one call into the
        loop."""
        return self._reports.soon((appliance, report))

    def report_later(self, appliance: str, report: StatusReport) -> Future[bool]:
        """:meth:`report_soon` for a caller in a thread that must not wait: a future of
        its own."""
        return self._reports.later((appliance, report))

    def _record_reports(self, reports: Sequence[tuple[str, StatusReport]]) -> list[bool]:
        """Write a batch of reports and hand on what they changed; whether each may move
        the rollout. Waits while a wave is handed on (see :meth:`_publish`)."""
        with self._ticks:
            self._ticks.wait_for(lambda: not self._handing_on, timeout=REPORTS_HELD)
        written = self._write_reports(reports)
        changes = [change for made, _ in written for change in made]
        try:
            self.notifier.publish(changes)
        except Exception:  # written already: a batch that failed would be written again
            log.exception("handing on the changes of %d status reports failed", len(reports))
            self.notifier.forget_all()
        return [moves for _, moves in written]

    def _write_reports(
        self, reports: Sequence[tuple[str, StatusReport]]
    ) -> list[tuple[list[ChangeRecord], bool]]:
        """Each report: the changes it made (joins, a revoked token) and whether it may
        move the rollout. The batch is written with one statement per table, not one per
        report (a wave's agents report at once)."""
        now = epoch(self.clock)
        appliances = [appliance for appliance, _ in reports]
        # a digest "ran healthy" (a later change back to it is a revert) once it is applied,
        # healthy and every cluster settled; an unbroken run of that is the streak the soak
        # gate proves
        ran = [ran_healthy(report) for _, report in reports]
        with self.store.write() as tx:
            tx.reports.put_many(
                ReportRecord(
                    appliance=appliance,
                    received_at=now,
                    applied_digest=report.appliedDigest,
                    healthy=report.health == "healthy",
                    body=report.model_dump(mode="json"),
                    in_use=any(c.phase != "Deleted" for c in report.clusters),
                )
                for appliance, report in reports
            )
            tx.agents.touch_many(appliances, at=now)
            tx.reports.mark_healthy_many(
                [
                    (appliance, digest)
                    for appliance, digest in zip(appliances, ran, strict=True)
                    if digest
                ],
                at=now,
            )
            self._write_streaks(tx, appliances, ran, now=now)
            assignments = tx.assignments.get_many(appliances)
            changes: list[list[ChangeRecord]] = []
            for appliance, report in reports:
                assignment = assignments.get(appliance)
                made = self._formed(tx, assignment, report, now=now)
                revoked = self._decommission(tx, assignment, report, now=now)
                refreshed = tx.assignments.get(appliance) if revoked else None
                if refreshed is not None:  # a later report in the batch sees it decommissioned
                    assignments[appliance] = refreshed
                changes.append(made + revoked)
            tx.events.add(
                EventRecord(
                    at=now,
                    level=e.level,
                    kind="agent",
                    message=e.message,
                    site=assignment.site if (assignment := assignments.get(appliance)) else None,
                    appliance=appliance,
                    key=e.key,
                )
                for appliance, report in reports
                for e in report.events
            )
            moving = self._moving(tx, appliances)
        return [
            (made, appliance in moving) for made, appliance in zip(changes, appliances, strict=True)
        ]

    @staticmethod
    def _write_streaks(
        tx: Transaction, appliances: Sequence[str], ran: Sequence[str | None], *, now: float
    ) -> None:
        """Each appliance's healthy streak after its reports, in the order they came."""
        before = tx.reports.streaks(appliances)
        after = dict(before)
        for appliance, digest in zip(appliances, ran, strict=True):
            streak = next_streak(after.get(appliance), appliance, digest, now=now)
            if streak is not None:
                after[appliance] = streak
        tx.reports.put_streaks(s for a, s in after.items() if s != before.get(a))

    def take_lease(self, appliance: str, cluster: str, *, purpose: str, seconds: float) -> Grant:
        """Grant (or renew) the lease that lets ``appliance`` take ``cluster``'s nodes down,
        unless another member holds it; raises NotMember for a cluster it is not served."""
        with self._decision() as tx:
            now = epoch(self.clock)
            found = grant(tx, appliance, cluster, purpose=purpose, seconds=seconds, now=now)
            if found.granted:
                tx.events.add(
                    [
                        self._event(
                            now,
                            "info",
                            "lease-granted",
                            f"{appliance} may take cluster {cluster}'s nodes down ({purpose})",
                        )
                    ]
                )
        return found

    def give_back_lease(self, appliance: str, cluster: str) -> bool:
        with self._decision() as tx:
            return give_back(tx, appliance, cluster)

    # -- internals ----------------------------------------------------------------------
    def _decommission(
        self,
        tx: Transaction,
        assignment: Assignment | None,
        report: StatusReport,
        *,
        now: float,
    ) -> list[ChangeRecord]:
        """An appliance removed from the fleet repository that reports its empty state
        applied and no node left: its token is revoked (returns the change that makes every
        replica forget it) and it is listed decommissioned."""
        if (
            assignment is None
            or assignment.declared
            or assignment.decommissioned_at is not None
            or assignment.served_digest is None
            or report.appliedDigest != assignment.served_digest
            or any(c.phase != "Deleted" or c.nodes for c in report.clusters)
        ):
            return []
        tx.agents.remove(assignment.appliance)
        revoked = [ChangeRecord("token", assignment.appliance, at=now)]
        tx.changes.add(revoked)
        tx.assignments.put(replace(assignment, decommissioned_at=now))
        tx.events.add(
            [
                EventRecord(
                    at=now,
                    level="info",
                    kind="appliance-decommissioned",
                    message=f"{assignment.appliance} removed its nodes: its token is revoked",
                    site=assignment.site,
                    appliance=assignment.appliance,
                )
            ]
        )
        return revoked

    def _formed(
        self,
        tx: Transaction,
        assignment: Assignment | None,
        report: StatusReport,
        *,
        now: float,
    ) -> list[ChangeRecord]:
        """A cluster has formed once its first server's appliance reports it Running: from
        then on a first server made anew joins the cluster instead of starting one. The
        members' served joins change: returns the changes that tell them."""
        running = [c.name for c in report.clusters if c.phase == "Running"]
        if assignment is None or assignment.served_digest is None or not running:
            return []
        pending = tx.joins.get_many((assignment.site, name) for name in running)
        waiting = [
            n for n in running if (r := pending.get((assignment.site, n))) and not r.formed_at
        ]
        if not waiting:
            return []
        content = tx.documents.get(assignment.served_digest)
        if content is None:
            return []
        clusters = {c["name"]: c for c in json.loads(content).get("clusters", [])}
        starts = [
            name
            for name in waiting
            if name in clusters
            and all(
                s.get("appliance") == assignment.appliance
                for s in (clusters[name].get("servers") or [])[:1]
            )
        ]
        if not tx.joins.formed(assignment.site, starts, at=now):
            return []
        return joins_changed(tx, assignment.site, at=now)

    @contextmanager
    def _decision(self, *, reading_first: bool = False) -> Iterator[Transaction]:
        """One decision: under the lock, in one exclusive transaction, without pauses for
        the garbage collector (a release or a wave opening handles every site) and with the
        work that can wait waiting (see Notifier.deciding), from the start or, when
        ``reading_first``, from where the caller enters it; once it committed, the events
        it recorded go to ``on_events``."""
        with (
            self._lock,
            nullcontext() if reading_first else self.notifier.deciding(),
            paused_collector(),
            self.store.write(exclusive=True) as tx,
        ):
            yield tx
        if self.on_events is not None and tx.events.added:
            try:
                self.on_events(list(tx.events.added))
            except Exception:  # reporting results must never stop the rollout
                log.exception("reporting %d events failed", len(tx.events.added))

    def tick_waits(self) -> bool:
        """Whether :meth:`tick_wanted` would wait for (or run) a tick now rather than
        return at once: for callers on an event loop, who then call it in a worker thread
        (the answer may change meanwhile; either way the tick covers them)."""
        with self._ticks:
            return not self._ticking or self._tick_waiters < TICK_WAITERS

    def tick_wanted(self, *, wait: bool = True) -> None:
        """A report that may move the rollout asks for a tick. Returns once a tick that
        started after this call has finished, or at once when :data:`TICK_WAITERS` reports
        wait for one already (or ``wait`` is False: the tick then runs in the background).

        Reports committed while a tick runs share the next round instead of queueing a tick
        each. A wave of thousands of agents reporting at once would otherwise hold every API
        worker thread waiting for ticks (22 reports a second at 10,000 sites): past the few
        that wait, a report returns as soon as it is recorded, and the rounds its report
        asked for run in the background.
        """
        with self._ticks:
            self._ticks_asked += 1
            wanted = self._ticks_asked
            if self._ticking:
                if not wait or self._tick_waiters >= TICK_WAITERS:
                    return
                self._tick_waiters += 1
                try:
                    self._ticks.wait_for(lambda: self._ticks_done >= wanted or not self._ticking)
                finally:
                    self._tick_waiters -= 1
                if self._ticks_done >= wanted or self._ticking:
                    return
            self._ticking = True  # this thread ticks, as the previous one stopped
        if not wait:
            threading.Thread(
                target=self._tick_rounds, args=(0.0,), name="rollout-ticks", daemon=True
            ).start()
        elif self._tick_round():
            threading.Thread(target=self._tick_rounds, name="rollout-ticks", daemon=True).start()

    def _tick_round(self) -> bool:
        """One tick covering every report asked for so far; whether another is wanted
        (if not, the ticking ends here)."""
        try:
            with self._ticks:
                covered = self._ticks_asked
            self.tick()
        except BaseException:
            with self._ticks:
                self._ticking = False
                self._ticks.notify_all()
            raise
        with self._ticks:
            self._ticks_done = covered
            more = self._ticks_asked != covered
            self._ticking = more
            self._ticks.notify_all()
        return more

    def _tick_rounds(self, first: float = TICK_SPACING) -> None:
        """The rounds reports keep asking for, the first after ``first`` seconds and then
        :data:`TICK_SPACING` apart and at least as long as the last round took, so the
        reports get the database between them (a round over ten thousand sites holds it for
        a second or more) and the round after the last report of a wave comes soon."""
        took = 0.0
        pause = first
        try:
            while True:
                time.sleep(pause)
                started = time.monotonic()
                if not self._tick_round():
                    return
                took = time.monotonic() - started
                pause = max(TICK_SPACING, took)
        except Exception:  # the periodic tick carries on; no report waits for this one
            log.exception("a rollout tick after status reports failed")

    def _advance_open(self, tx: Transaction) -> list[ChangeRecord]:
        changes: list[ChangeRecord] = []
        for rollout in tx.rollouts.open():
            changes += self._advance(tx, rollout.revision)
        return changes

    def _advance(self, tx: Transaction, revision: str) -> list[ChangeRecord]:
        """One step of the rollout of ``revision``, written; returns the states it serves
        anew (also logged for the other replicas). Work that can wait (see
        Notifier.deciding) waits from the moment it decides: the reads before, a second
        over ten thousand sites, go on beside the documents being made ahead."""
        rollout = tx.rollouts.get(revision)
        assert rollout is not None
        targets = tx.rollouts.targets(revision)
        # only what was released can be applied: a wave opening over ten thousand sites
        # reads the reports of the wave before it, not of every appliance
        watched = [t.appliance for t in targets if t.changed and t.released_at is not None]
        sites = tx.rollouts.sites(revision)
        reports = tx.reports.for_appliances(watched)
        streaks = tx.reports.streaks(watched)
        paused = self._paused(tx)
        with self.notifier.deciding():
            snapshot = Snapshot(
                rollout=rollout,
                sites=sites,
                targets=targets,
                reports=reports,
                streaks=streaks,
                now=self.clock(),
                heartbeat_timeout=self.heartbeat_timeout,
                paused=paused,
            )
            return self._decide(tx, snapshot)

    def _decide(self, tx: Transaction, snapshot: Snapshot) -> list[ChangeRecord]:
        """:meth:`_advance`'s step over what it read, written."""
        progress = advance(snapshot)
        now = snapshot.now.timestamp()
        tx.rollouts.save(progress.rollout)
        tx.rollouts.save_sites(progress.sites)
        tx.rollouts.save_targets(progress.targets)
        tx.reports.put_streaks(progress.proven)
        current = tx.assignments.get_many(t.appliance for t in progress.released)
        released = [t for t in progress.released if t.appliance in current]
        tx.assignments.put_many(
            [
                amended(
                    current[target.appliance],
                    served_digest=target.digest,
                    served_revision=target.revision if target.digest else None,
                    served_at=now,
                    declared=target.digest is not None,
                )
                for target in released
            ]
        )
        tx.events.add(progress.events)
        changes = [
            ChangeRecord(
                "served",
                t.appliance,
                at=now,
                digest=t.digest,
                revision=t.revision if t.digest else None,
            )
            for t in released
        ]
        tx.changes.add(changes)
        return changes

    def _record_good(
        self, tx: Transaction, release: Release, now: float, seconds: float | None
    ) -> RevisionRecord | None:
        """The revision's record; None when it was recorded good before."""
        sha = release.revision
        known = tx.revisions.get(sha)
        if known is None:
            record = RevisionRecord(sha, "good", (), now, seconds)
            return tx.revisions.add(replace(record, author=release.author, subject=release.subject))
        if known.outcome == "good":
            return None
        tx.revisions.set_outcome(sha, "good", errors=(), at=now)  # failed before, good now
        return tx.revisions.get(sha)

    def _supersede(self, tx: Transaction, revision: str, now: float) -> RolloutRecord | None:
        """End the open rollouts; returns the newest of them, whose failures carry over."""
        newest = None
        for rollout in tx.rollouts.open():
            tx.rollouts.save(replace(rollout, state="superseded", updated_at=now, finished_at=now))
            message = f"rollout of {rollout.revision[:7]} superseded by {revision[:7]}"
            tx.events.add(
                [self._event(now, "info", "rollout-superseded", message, revision=rollout.revision)]
            )
            newest = rollout
        return newest

    def _carry_over(self, tx: Transaction, before: RolloutRecord, plan: ReleasePlan) -> None:
        """A site that failed a state and is handed the same state again stays failed (and
        accepted, if an admin resumed past it); a halt holds unless the new revision changes
        the state of every failing site."""
        failed = {s.site: s for s in tx.rollouts.sites(before.revision) if s.state == "failed"}
        if not failed:
            return
        old: dict[str, dict[str, str | None]] = {}
        for target in tx.rollouts.targets(before.revision):
            if target.site in failed:
                old.setdefault(target.site, {})[target.appliance] = target.digest
        new: dict[str, dict[str, str | None]] = {}
        for target in plan.targets:
            if target.site in failed:
                new.setdefault(target.site, {})[target.appliance] = target.digest
        still = {name for name in failed if name in new and new[name] == old.get(name)}
        for i, site in enumerate(plan.sites):
            if site.site in still and site.changed:
                was = failed[site.site]
                plan.sites[i] = replace(
                    site,
                    state="failed",
                    admitted_at=was.admitted_at,
                    failed_at=was.failed_at,
                    failure=was.failure,
                    waiting="",
                )
        rollout = plan.rollout
        accepted = tuple(sorted(still & set(before.accepted)))
        failing = tuple(sorted(still))
        if before.state == "halted" and still:
            rollout = replace(rollout, state="halted")
            kept = ", ".join(failing)
            plan.events.append(
                self._event(
                    rollout.started_at,
                    "error",
                    "rollout-halted",
                    f"rollout of {rollout.revision[:7]} stays halted: it does not change the "
                    f"failing sites {kept}",
                    revision=rollout.revision,
                )
            )
        plan.rollout = replace(rollout, failing=failing, accepted=accepted)

    def _plan(self, tx: Transaction, release: Release, *, seq: int, now: float) -> ReleasePlan:
        current = {a.appliance: a for a in tx.assignments.all()}
        wanted = {
            (appliance, state.digest)
            for site in release.sites.values()
            for appliance, state in site.states.items()
        }
        # the documents worth reading: those served to appliances whose digest changes
        served = {
            before.served_digest
            for appliance, digest in wanted
            if (before := current.get(appliance)) is not None
            and before.served_digest is not None
            and before.served_digest != digest
        }
        earlier = {d: s.clusters for d, s in release.earlier.items() if d in served}
        read = tx.documents.get_many(served - set(earlier))
        # each new document serialized once, and checked against its digest
        known = tx.documents.known({d for _, d in wanted})
        documents, encoded, forged = new_documents(release, known)
        if forged:
            raise InvalidRelease("; ".join(forged[:10]))
        return plan_release(
            release,
            seq=seq,
            current=current,
            served_clusters=ServedClusters(earlier, read),
            healthy=tx.reports.healthy_pairs(wanted),
            streaks=tx.reports.streaks(appliance for appliance, _ in wanted),
            documents=documents,
            encoded=encoded,
            now=now,
        )

    def _store_plan(self, tx: Transaction, plan: ReleasePlan, *, now: float) -> None:
        tx.documents.put(plan.documents, at=now)
        tx.rollouts.add(plan.rollout)
        tx.rollouts.add_sites(plan.sites)
        tx.rollouts.add_targets(plan.targets)
        tx.assignments.put_many(plan.assignments)
        changed = sum(s.changed for s in plan.sites)
        message = (
            f"revision {plan.rollout.revision[:7]} recorded: "
            f"{changed} of {len(plan.sites)} sites change"
        )
        recorded = self._event(
            now, "info", "revision-good", message, revision=plan.rollout.revision
        )
        tx.events.add([recorded, *plan.events])

    def _moving(self, tx: Transaction, appliances: Sequence[str]) -> set[str]:
        """Those of ``appliances`` whose reports can change a gate: each is a changed
        target of the running rollout, in a site that has not settled yet."""
        moving: set[str] = set()
        for rollout in tx.rollouts.open():
            if rollout.state != "running":
                continue
            targets = tx.rollouts.targets(rollout.revision, appliances=sorted(set(appliances)))
            targets = [t for t in targets if t.changed]
            sites = tx.rollouts.sites_named(rollout.revision, sorted({t.site for t in targets}))
            unsettled = {s.site for s in sites if s.state not in SETTLED}
            moving.update(t.appliance for t in targets if t.site in unsettled)
        return moving

    @staticmethod
    def _paused(tx: Transaction) -> bool:
        control = tx.controls.get(PAUSED)
        return control is not None and bool(control.value)

    @staticmethod
    def _event(
        now: float, level: Level, kind: str, message: str, *, revision: str | None = None
    ) -> EventRecord:
        return EventRecord(at=now, level=level, kind=kind, message=message, revision=revision)
