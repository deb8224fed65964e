"""The rollout's promise, checked by Hypothesis over random histories.

A state machine drives the real rollout service over a real SQLite store: commits that touch
random sets of sites (new states, reverts to states that ran before, commits touching none
of them), agents reporting healthy, unhealthy, failed or nothing, the clock moving, and an
admin pausing, resuming and promoting. After every step it checks, against a model kept
from the history alone:

- an appliance receives a state only if it ran that state healthy before (a revert), or
  every changed site of the waves before its own proved its state (ran it healthy for the
  soak) or failed it within ``maxFailures`` (unless an admin promoted the wave, or resumed
  past those failures);
- a paused rollout releases nothing new; a halted one releases nothing new until a commit
  changes every failing site or an admin resumes it;
- once every agent reports healthy and the soaks pass, every appliance converges on the
  newest revision.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from agent.contract import StatusReport
from reconciler.planning.waves import allowance
from reconciler.rollout import Release, RolloutService, Wave
from reconciler.rollout.errors import RolloutConflict
from reconciler.store import Store

from .clocks import ManualClock
from .fleets import release, revision, site

SOAK = 3600.0
WAVES = (Wave("canary", {"ring": "canary"}), Wave("early", {"ring": "early"}), Wave("rest", {}))
WAVE_OF = {"canary": 0, "early": 1, "general": 2}
SITES = (
    site("c-1", ring="canary"),
    site("c-2", "c-2-a", "c-2-b", ring="canary"),
    site("e-1", ring="early"),
    site("s-1"),
    site("s-2"),
    site("s-3", "s-3-a", "s-3-b"),
)
BY_NAME = {s.name: s for s in SITES}
SITE_OF = {a: s.name for s in SITES for a in s.appliances}
MAX_FAILURES = "50%"
REPORTS = ("healthy", "unhealthy", "error")
EXAMPLES = int(os.environ.get("EDGEFLEET_ROLLOUT_EXAMPLES", "120"))


def wave_of(name: str) -> int:
    return WAVE_OF[BY_NAME[name].labels["ring"]]


@dataclass
class Streak:
    digest: str
    since: float | None
    proven: bool = False


@dataclass
class Model:
    """What the history says, kept apart from the service's own bookkeeping."""

    targets: dict[str, str] = field(default_factory=dict)  # newest revision, by appliance
    changed: set[str] = field(default_factory=set)  # sites not proven when it was committed
    ran_healthy: dict[str, set[str]] = field(default_factory=dict)
    failed: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # digest, when
    target_since: dict[str, float] = field(default_factory=dict)  # its target since when
    streaks: dict[str, Streak] = field(default_factory=dict)
    accepted: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    promoted: int = -1  # the wave an admin opened in the newest rollout
    paused: bool = False

    def proven(self, appliance: str, digest: str) -> bool:
        streak = self.streaks.get(appliance)
        return streak is not None and streak.digest == digest and streak.proven

    def site_state(self, name: str) -> tuple[str, ...]:
        return tuple(self.targets[a] for a in BY_NAME[name].appliances)

    def site_failed(self, name: str) -> bool:
        """An appliance failed its target since it became its target, and the site has
        not proven its state since."""
        if self.site_proven(name):
            return False
        return any(
            digest == self.targets[a] and at >= self.target_since[a]
            for a in BY_NAME[name].appliances
            for digest, at in self.failed.get(a, [])
        )

    def site_proven(self, name: str) -> bool:
        return all(self.proven(a, self.targets[a]) for a in BY_NAME[name].appliances)

    def why_not(self, appliance: str, digest: str) -> str | None:
        """Why releasing ``digest`` to ``appliance`` now breaks the promise (None: it does
        not)."""
        if digest in self.ran_healthy.get(appliance, set()):
            return None  # a revert
        if self.paused:
            return "released while paused"
        own = wave_of(SITE_OF[appliance])
        if self.promoted >= own:
            return None
        for wave in range(own):
            members = [n for n in self.changed if wave_of(n) == wave]
            unsettled = [n for n in members if not self.site_proven(n) and not self.site_failed(n)]
            if unsettled:
                return f"wave {wave} has not proven {sorted(unsettled)}"
            failed = [
                n
                for n in members
                if self.site_failed(n) and (n, self.site_state(n)) not in self.accepted
            ]
            if len(failed) > allowance(MAX_FAILURES, len(members)):
                return f"wave {wave} failed past maxFailures: {sorted(failed)}"
        return None


class RolloutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.store = Store(f"sqlite:///{self.folder.name}/store.db")
        self.clock = ManualClock()
        self.service = RolloutService(
            store=self.store, clock=self.clock, heartbeat_timeout=30 * 24 * SOAK
        )
        self.model = Model()
        self.versions = dict.fromkeys(BY_NAME, 0)
        self.history: dict[str, list[int]] = {name: [0] for name in BY_NAME}
        self.counter = itertools.count(1)
        self.newest: Release | None = None
        self.applied: dict[str, str | None] = dict.fromkeys(SITE_OF)

    def teardown(self) -> None:
        self.store.close()
        self.folder.cleanup()

    # -- helpers -----------------------------------------------------------------------
    def served(self) -> dict[str, str | None]:
        with self.store.read() as tx:
            found = tx.assignments.get_many(SITE_OF)
        return {a: found[a].served_digest if a in found else None for a in SITE_OF}

    def halted(self) -> list[str]:
        with self.store.read() as tx:
            rollout = tx.rollouts.latest()
        return list(rollout.failing) if rollout and rollout.state == "halted" else []

    def commit(self) -> Release:
        manifests = {name: f"v{v}" for name, v in self.versions.items()}
        return release(
            revision(f"r{next(self.counter)}"),
            SITES,
            manifests=manifests,
            waves=WAVES,
            max_failures=MAX_FAILURES,
            soak_seconds=SOAK,
        )

    def step(self, action: str, do: Iterator[None] | None = None, *, lifts: bool = False) -> None:
        """Run one step and check every release it made against the model; ``lifts``: the
        step may lift a halt (a resume, a commit changing every failing site)."""
        before, halted = self.served(), [] if lifts else self.halted()
        if do is not None:
            next(do, None)
        self.observe_streaks()  # proofs the step could make at this time
        after = self.served()
        for appliance, digest in after.items():
            if digest is None or digest == before[appliance]:
                continue
            problem = self.model.why_not(appliance, digest)
            assert problem is None, f"{action}: {appliance} got {digest[7:19]}: {problem}"
            new = digest not in self.model.ran_healthy.get(appliance, set())
            assert not (halted and new), f"{action}: {appliance} released while halted"

    def observe_streaks(self) -> None:
        now = self.clock().timestamp()
        for streak in self.model.streaks.values():
            if streak.since is not None and now - streak.since >= SOAK:
                streak.proven = True

    def report(self, appliance: str, how: str) -> StatusReport:
        served = self.served()[appliance]
        name = f"{SITE_OF[appliance]}-store"
        body: dict[str, object] = {"health": "healthy", "clusters": []}
        if how == "error":
            body["appliedDigest"] = self.applied[appliance]
            body["error"] = {"digest": served, "message": "apply failed"}
            body["health"] = "unhealthy"
        else:
            self.applied[appliance] = served
            body["appliedDigest"] = served
            body["health"] = how
            body["clusters"] = [
                {"name": name, "phase": "Running", "nodes": [{"name": "n", "phase": "Running"}]}
            ]
        return StatusReport.model_validate(body)

    def learn(self, appliance: str, report: StatusReport) -> None:
        """What the report tells the model: ran healthy, failed, the streak."""
        now = self.clock().timestamp()
        digest = report.appliedDigest
        if report.error is not None and report.error.digest is not None:
            self.model.failed.setdefault(appliance, []).append((report.error.digest, now))
        healthy = digest if report.health == "healthy" and digest and not report.error else None
        if report.health != "healthy" and digest is not None and report.error is None:
            self.model.failed.setdefault(appliance, []).append((digest, now))
        streak = self.model.streaks.get(appliance)
        if healthy is None:
            if streak is not None:
                streak.since = None
            return
        self.model.ran_healthy.setdefault(appliance, set()).add(healthy)
        if streak is None or streak.digest != healthy:
            self.model.streaks[appliance] = Streak(healthy, now)
        elif streak.since is None:
            streak.since = now

    def record(self, rel: Release) -> None:
        self.newest = rel
        failing = self.halted()
        old = {n: self.model.site_state(n) for n in failing}
        before = self.model.targets
        self.model.targets = {
            a: state.digest for s in rel.sites.values() for a, state in s.states.items()
        }
        now = self.clock().timestamp()
        for appliance, digest in self.model.targets.items():
            if before.get(appliance) != digest:
                self.model.target_since[appliance] = now
        lifts = bool(failing) and all(self.model.site_state(n) != old[n] for n in failing)
        self.model.changed = {n for n in BY_NAME if not self.model.site_proven(n)}
        self.model.promoted = -1
        # accepted failures hold while the failing state stays the same
        self.model.accepted = {
            (n, state) for n, state in self.model.accepted if self.model.site_state(n) == state
        }

        def do() -> Iterator[None]:
            self.service.record_release(rel)
            yield

        self.step(f"commit {rel.revision[:7]}", do(), lifts=lifts)

    # -- rules -------------------------------------------------------------------------
    @initialize()
    def first_commit(self) -> None:
        self.record(self.commit())

    @rule(
        touched=st.sets(st.sampled_from(sorted(BY_NAME)), max_size=len(BY_NAME)),
        revert=st.booleans(),
    )
    def commit_sites(self, touched: set[str], revert: bool) -> None:
        """A commit changing ``touched`` (none: a commit to other files, or a site no
        appliance of these runs); ``revert`` takes each back to its version before."""
        for name in sorted(touched):
            earlier = [v for v in self.history[name] if v != self.versions[name]]
            if revert and earlier:
                self.versions[name] = earlier[-1]
            else:
                self.versions[name] = max(self.history[name]) + 1
            self.history[name].append(self.versions[name])
        self.record(self.commit())

    @rule(appliance=st.sampled_from(sorted(SITE_OF)), how=st.sampled_from(REPORTS))
    def agent_reports(self, appliance: str, how: str) -> None:
        if self.served()[appliance] is None:
            return
        report = self.report(appliance, how)
        self.learn(appliance, report)

        def do() -> Iterator[None]:
            self.service.accept_report(appliance, report)
            yield

        self.step(f"{appliance} reports {how}", do())

    @rule(minutes=st.sampled_from([1, 20, 61, 180]))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

        def do() -> Iterator[None]:
            self.service.tick()
            yield

        self.step(f"{minutes} minutes pass", do())

    @rule()
    def pause(self) -> None:
        def do() -> Iterator[None]:
            self.service.pause(by="property-test")
            yield

        self.step("pause", do())
        self.model.paused = True

    @rule()
    def resume(self) -> None:
        failing = self.halted()
        self.model.paused = False
        for name in BY_NAME:
            if self.model.site_failed(name) and (failing or name in failing):
                self.model.accepted.add((name, self.model.site_state(name)))

        def do() -> Iterator[None]:
            self.service.resume(by="property-test")
            yield

        self.step("resume", do(), lifts=True)

    @rule(wave=st.sampled_from([w.name for w in WAVES]))
    def promote(self, wave: str) -> None:
        index = [w.name for w in WAVES].index(wave)

        def do() -> Iterator[None]:
            try:
                self.service.promote(wave, by="property-test")
            except RolloutConflict:
                return
            self.model.promoted = max(self.model.promoted, index)
            yield

        self.step(f"promote {wave}", do())

    @precondition(lambda self: self.newest is not None)
    @rule()
    def everyone_healthy_until_converged(self) -> None:
        """Resume, then every agent runs what it is served healthy while the soaks pass:
        the fleet reaches the newest revision."""
        self.resume()
        assert self.newest is not None
        wanted = {
            a: s.digest for site_ in self.newest.sites.values() for a, s in site_.states.items()
        }
        for _ in range(len(WAVES) + 2):
            for appliance in sorted(SITE_OF):
                self.agent_reports(appliance, "healthy")
            self.time_passes(61)
            self.time_passes(1)
            if self.served() == wanted:
                break
        assert self.served() == wanted

    @invariant()
    def nothing_served_outside_the_fleet(self) -> None:
        assert set(self.served()) == set(SITE_OF)


RolloutMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRolloutPromise = RolloutMachine.TestCase
