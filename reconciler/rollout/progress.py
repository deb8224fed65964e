"""One step of a rollout: from what the store holds and what agents reported, decide which
sites are proven, failed or soaking, whether a wave opens, which sites are admitted and
which appliances are released, and whether the rollout halts or is done.

The invariant: an appliance receives a state only if it ran that state healthy before (a
revert: released at once, past every gate), or every changed site of the waves before its
own is settled: each of its appliances ran its state healthy for the soak (*proven*), or
failed it within ``maxFailures``. A site is *changed* while any appliance of it is not
proven on its state, so a newer revision never counts a wave as done for a change that
wave has not proven; being served a state proves nothing.

A pure function (:func:`advance`) over a :class:`Snapshot`; the service loads the snapshot,
calls it and writes the :class:`Progress` back in the same transaction, so a decision is
taken once even when ticks race. The steps, in order:

1. observe each admitted site: failed (sticky), soaking, done (proven), or still rolling;
2. halt when an open wave has more failed sites than ``maxFailures`` allows (an admin's
   resume accepts the failures seen until then);
3. halted or paused: release reverts only;
4. open the next wave once every changed site of the waves up to the current one settled;
5. admit the changed sites of every open wave;
6. release, in admitted sites, each appliance whose gates are open (maintenance window for
   disruptive changes; one appliance at a time in a cluster spanning several);
7. the rollout is done when every wave has opened and every changed site settled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from agent.contract import MaintenanceWindow

from ..planning.waves import allowance
from ..store import (
    EventRecord,
    ReportRecord,
    RolloutRecord,
    RolloutSite,
    RolloutTarget,
    Streak,
    amended,
)
from .gates import Hold, first_hold, turn_gate, window_gate
from .health import Observation, observe, proof

SiteState = Literal["unchanged", "pending", "rolling", "soaking", "done", "failed"]
SETTLED: tuple[str, ...] = ("done", "failed")


@dataclass(frozen=True)
class Snapshot:
    rollout: RolloutRecord
    sites: Sequence[RolloutSite]
    targets: Sequence[RolloutTarget]
    reports: Mapping[str, ReportRecord]
    streaks: Mapping[str, Streak]
    now: datetime
    heartbeat_timeout: float
    paused: bool = False


@dataclass
class Progress:
    rollout: RolloutRecord
    sites: list[RolloutSite] = field(default_factory=list)  # rows to write back
    targets: list[RolloutTarget] = field(default_factory=list)  # rows to write back
    released: list[RolloutTarget] = field(default_factory=list)  # now to be served
    proven: list[Streak] = field(default_factory=list)  # streaks newly proven
    events: list[EventRecord] = field(default_factory=list)


def advance(snap: Snapshot) -> Progress:
    step = _Step(snap)
    if snap.rollout.state in ("running", "halted"):
        step.run()
    return step.result()


class _Step:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.now = snap.now.timestamp()
        self.rollout = snap.rollout
        self.sites = {s.site: s for s in snap.sites}
        self.targets = {t.appliance: t for t in snap.targets}
        self.streaks = dict(snap.streaks)
        self.by_site: dict[str, list[str]] = defaultdict(list)
        for t in snap.targets:
            self.by_site[t.site].append(t.appliance)
        self.released: list[RolloutTarget] = []
        self.proven: list[Streak] = []
        self.events: list[EventRecord] = []
        self.wave_names = [str(w["name"]) for w in self.rollout.waves]

    # -- the steps ---------------------------------------------------------------------
    def run(self) -> None:
        # 1. observe admitted sites
        for name in sorted(self.sites):
            self._observe(name)
        # 2. halt past maxFailures
        self._halt()
        # 3. halted or paused: reverts only
        held = self._held()
        if held:
            self._release_reverts(held)
            return
        # 4. open waves whose predecessors settled
        self._open_waves()
        # 5. admit the changed sites of open waves
        for name in sorted(self.sites):
            self._admit(name)
        # 6. release appliances whose gates are open
        for name in sorted(self.sites):
            self._release(name)
        # 7. done, or say what the next wave waits for
        self._finish()

    def _observe(self, name: str) -> None:
        site = self.sites[name]
        if not site.changed or site.admitted_at is None or site.state in SETTLED:
            return
        targets = self._changed_targets(name)
        seen = {t.appliance: self._seen(t) for t in targets}
        failed = [(a, o) for a, o in seen.items() if o is not None and o.standing == "failed"]
        if failed:
            appliance, observation = failed[0]
            failure = f"{appliance}: {observation.detail}"
            self._site(site, state="failed", failed_at=self.now, failure=failure, waiting="")
            self._event("error", "site-failed", f"{name} failed: {failure}", site=name)
            return
        proofs = {t.appliance: self._proof(t) for t in targets}
        if all(when is not None for when in proofs.values()):
            self._site(site, state="done", done_at=self.now, waiting="")
            self._event("info", "site-done", f"{name} applied and soaked", site=name)
            return
        if all(o is not None and o.standing == "applied" for o in seen.values()):
            runs = [self.streaks.get(t.appliance) for t in targets if proofs[t.appliance] is None]
            starts = [s.since for s in runs if s is not None and s.since is not None]
            since = max(starts) if len(starts) == len(runs) else None
            if since is None:
                why = "applied; waiting for a healthy status report"
            elif self.now - since >= self.rollout.soak_seconds:
                why = "soaked; waiting for a fresh status report"
            else:
                until = datetime.fromtimestamp(since + self.rollout.soak_seconds, UTC)
                why = f"soaking until {until:%Y-%m-%d %H:%M:%S} UTC"
            self._site(site, state="soaking", healthy_since=since, waiting=why)
            return
        self._site(site, state="rolling", healthy_since=None)

    def _halt(self) -> None:
        failing = tuple(sorted(s.site for s in self.sites.values() if s.state == "failed"))
        self.rollout = replace(self.rollout, failing=failing)
        if self.rollout.state != "running":
            return
        for wave in range(min(self.rollout.wave, len(self.wave_names) - 1) + 1):
            members = [s for s in self.sites.values() if s.changed and s.wave == wave]
            failed = [s.site for s in members if s.state == "failed"]
            counted = [s for s in failed if s not in self.rollout.accepted]
            allowed = allowance(self.rollout.max_failures, len(members))
            if len(counted) > allowed:
                self.rollout = replace(self.rollout, state="halted", updated_at=self.now)
                message = (
                    f"rollout of {self.rollout.revision[:7]} halted in wave "
                    f"{self.wave_names[wave]}: {len(failed)} of {len(members)} sites failed "
                    f"(at most {allowed} may): {', '.join(sorted(failed))}"
                )
                self._event("error", "rollout-halted", message)
                return

    def _held(self) -> str:
        """Why nothing new is released now: the rollout halted, or an admin paused it."""
        if self.rollout.state == "halted":
            return "rollout halted"
        if self.snap.paused:
            return "rollout paused"
        return ""

    def _release_reverts(self, why: str) -> None:
        for name in sorted(self.sites):
            site = self.sites[name]
            for target in self._changed_targets(name) + self._unchanged_unreleased(name):
                if target.released_at is not None:
                    continue
                if target.revert:
                    self._release_target(target, site)
                else:
                    self._target(target, waiting=why)
            site = self.sites[name]
            if site.changed and site.state not in SETTLED and site.admitted_at is None:
                self._site(site, state="pending", waiting=why)

    def _open_waves(self) -> None:
        while self.rollout.wave < len(self.wave_names):
            wave = self.rollout.wave
            if self._wave_hold(wave) is not None:
                return
            self.rollout = replace(self.rollout, wave=wave + 1, updated_at=self.now)
            if self._members(wave) and wave + 1 < len(self.wave_names):
                message = (
                    f"wave {self.wave_names[wave]} passed; wave {self.wave_names[wave + 1]} opens"
                )
                self._event("info", "wave-opened", message)

    def _wave_hold(self, wave: int) -> Hold | None:
        """A wave's successor opens once every changed site of the wave, and of every wave
        before it, settled (an admin may have promoted a wave past unsettled ones: that
        opens the promoted wave alone)."""
        ahead = [s for w in range(wave + 1) for s in self._members(w)]
        return turn_gate(
            ahead,
            settled=lambda s: s.state in SETTLED,
            describe=lambda s: (
                f"{s.site} ({self.wave_names[s.wave]}) is {s.state}"
                + (f": {s.waiting}" if s.waiting else "")
            ),
        )

    def _members(self, wave: int) -> list[RolloutSite]:
        return [s for s in self._ordered_sites() if s.changed and s.wave == wave]

    def _admit(self, name: str) -> None:
        site = self.sites[name]
        if not site.changed or site.admitted_at is not None:
            return
        if site.wave <= self.rollout.wave or site.revert:
            self._site(site, state="rolling", admitted_at=self.now, waiting="")
            why = (
                "a revert, skipping gates" if site.revert else f"wave {self.wave_names[site.wave]}"
            )
            self._event("info", "site-admitted", f"{name} admitted ({why})", site=name)

    def _release(self, name: str) -> None:
        site = self.sites[name]
        for target in self._unchanged_unreleased(name):
            self._release_target(target, site)  # reverts to a proven state
        if site.admitted_at is None or site.state in SETTLED:
            for target in self._changed_targets(name):
                if target.released_at is None and target.revert:
                    self._release_target(target, site)
            return
        windows = tuple(MaintenanceWindow.model_validate(w) for w in site.windows)
        waiting: list[str] = []
        for target in self._changed_targets(name):
            if target.released_at is None:
                hold = None if target.revert else self._gates(target, windows)
                if hold is not None:
                    self._target(target, waiting=hold.reason)
                    waiting.append(f"{target.appliance}: {hold.reason}")
                    continue
                target = self._release_target(target, site)
            seen = self._seen(target)
            if seen is not None and seen.standing != "applied":
                waiting.append(f"{target.appliance}: {seen.detail}")
        site = self.sites[name]
        if site.state == "rolling":
            self._site(site, waiting="; ".join(waiting))

    def _release_target(self, target: RolloutTarget, site: RolloutSite) -> RolloutTarget:
        released = self._target(target, released_at=self.now, waiting="")
        self.released.append(released)
        how = " (a revert)" if target.revert else ""
        self._event(
            "info",
            "appliance-released",
            f"{target.appliance} released {_short(target.digest)}{how}",
            site=site.site,
            appliance=target.appliance,
        )
        return released

    def _finish(self) -> None:
        if self.rollout.wave < len(self.wave_names):
            hold = self._wave_hold(self.rollout.wave)
            for site in self._ordered_sites():
                if site.changed and site.admitted_at is None:
                    why = f"waiting for wave {self.wave_names[site.wave]}"
                    self._site(
                        site, state="pending", waiting=why + (f": {hold.reason}" if hold else "")
                    )
            return
        if all(s.state in SETTLED for s in self.sites.values() if s.changed):
            self.rollout = replace(
                self.rollout, state="done", updated_at=self.now, finished_at=self.now
            )
            self._event("info", "rollout-done", f"rollout of {self.rollout.revision[:7]} done")

    # -- gates and observations --------------------------------------------------------
    def _gates(self, target: RolloutTarget, windows: tuple[MaintenanceWindow, ...]) -> Hold | None:
        site = self.sites[target.site]

        def window() -> Hold | None:
            return window_gate(
                disruptive=target.disruptive,
                windows=windows,
                timezone=site.timezone,
                now=self.snap.now,
            )

        def turn() -> Hold | None:
            return self._cluster_turn(target)

        return first_hold(window, turn)

    def _cluster_turn(self, target: RolloutTarget) -> Hold | None:
        """A disruptive change in a cluster spanning several appliances goes one appliance
        at a time, control-plane appliances first: it waits for every appliance ahead of it
        in that cluster that is not proven yet to report its nodes Running."""
        if not target.disruptive or not target.shared:
            return None
        ahead = [
            t
            for t in self._changed_targets(target.site)
            if set(t.shared) & set(target.shared) and _turn_order(t) < _turn_order(target)
        ]
        return turn_gate(
            ahead,
            settled=lambda t: self._settled_appliance(t),
            describe=lambda t: f"waiting for {t.appliance} to report its nodes Running",
        )

    def _settled_appliance(self, target: RolloutTarget) -> bool:
        current = self.targets[target.appliance]
        seen = self._seen(current)
        return seen is not None and seen.standing == "applied"

    def _seen(self, target: RolloutTarget) -> Observation | None:
        if target.released_at is None:
            return None
        return observe(
            target.digest,
            self.snap.reports.get(target.appliance),
            now=self.now,
            heartbeat_timeout=self.snap.heartbeat_timeout,
        )

    def _proof(self, target: RolloutTarget) -> float | None:
        """When the target's digest was proven on its appliance (None: not yet); records a
        proof made now."""
        if target.released_at is None:
            return None
        streak = self.streaks.get(target.appliance)
        record = self.snap.reports.get(target.appliance)
        fresh = record is not None and self.now - record.received_at <= self.snap.heartbeat_timeout
        when = proof(
            streak, target.digest, now=self.now, soak=self.rollout.soak_seconds, fresh=fresh
        )
        if when is not None and streak is not None and streak.proven_at is None:
            proven = replace(streak, proven_at=when)
            self.streaks[target.appliance] = proven
            self.proven.append(proven)
        return when

    def _changed_targets(self, site: str) -> list[RolloutTarget]:
        found = [self.targets[a] for a in self.by_site.get(site, [])]
        return sorted((t for t in found if t.changed), key=_turn_order)

    def _unchanged_unreleased(self, site: str) -> list[RolloutTarget]:
        """Appliances proven on their state but served another (they go back to it)."""
        found = [self.targets[a] for a in self.by_site.get(site, [])]
        return [t for t in found if not t.changed and t.released_at is None]

    def _ordered_sites(self) -> list[RolloutSite]:
        return sorted(self.sites.values(), key=lambda s: (s.wave, s.site))

    # -- writing -----------------------------------------------------------------------
    def _site(self, site: RolloutSite, **changes: object) -> RolloutSite:
        updated = amended(site, **changes)
        self.sites[site.site] = updated
        return updated

    def _target(self, target: RolloutTarget, **changes: object) -> RolloutTarget:
        updated = amended(target, **changes)
        self.targets[target.appliance] = updated
        return updated

    def _event(
        self,
        level: Literal["info", "warning", "error"],
        kind: str,
        message: str,
        *,
        site: str | None = None,
        appliance: str | None = None,
    ) -> None:
        self.events.append(
            EventRecord(
                at=self.now,
                level=level,
                kind=kind,
                message=message,
                site=site,
                appliance=appliance,
                revision=self.rollout.revision,
            )
        )

    def result(self) -> Progress:
        before_sites = {s.site: s for s in self.snap.sites}
        before_targets = {t.appliance: t for t in self.snap.targets}
        return Progress(
            rollout=self.rollout,
            sites=[s for n, s in sorted(self.sites.items()) if s != before_sites[n]],
            targets=[t for a, t in sorted(self.targets.items()) if t != before_targets[a]],
            released=self.released,
            proven=self.proven,
            events=self.events,
        )


def _turn_order(target: RolloutTarget) -> tuple[bool, str]:
    return (not target.control_plane, target.appliance)


def _short(digest: str | None) -> str:
    return digest[7:19] if digest else "no state"
