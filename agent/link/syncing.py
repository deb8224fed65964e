"""The sync loop of ``edgefleet-agent run``: register, long-poll the desired state, apply it on
every pass (which repairs drift) and report. Temporary failures back off; a refused state is
reported and the last good one keeps running. A token the reconciler no longer knows (an
admin reset the appliance) is dropped, and the agent registers again if it has a
registration token; :func:`rotate_token` swaps the token for a new one."""

from __future__ import annotations

import logging
import os
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.apply.admission import StateRefused, admit
from agent.apply.passes import ApplyResult
from agent.contract import ApplyError, DesiredState, ReportedEvent, StatusReport
from agent.daytwo.records import DayTwoStatus
from agent.link.client import AGENT_VERSION, AgentLink, Rejected, Unreachable
from agent.link.reports import status_report

log = logging.getLogger(__name__)

Apply = Callable[[DesiredState], ApplyResult]


@dataclass
class Backoff:
    """Exponential backoff with full jitter: 1 s, 2 s, 4 s ... up to ``cap``."""

    base: float = 1.0
    cap: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next(self) -> float:
        self.failures += 1
        return self.rng.uniform(0, min(self.cap, self.base * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class SyncSettings:
    appliance: str
    token_file: Path
    hostname: str
    wait: float = 30.0  # long-poll seconds; also the drift-check interval
    registration_token: str | None = None


class SyncLoop:
    def __init__(
        self,
        *,
        settings: SyncSettings,
        link: AgentLink,
        apply: Apply,
        last_good: DesiredState | None,
        backoff: Backoff | None = None,
        on_state: Callable[[DesiredState], None] | None = None,
        day2: Callable[[DesiredState], tuple[DayTwoStatus, ...]] | None = None,
    ) -> None:
        self.on_state = on_state
        self.day2 = day2
        self.settings = settings
        self.link = link
        self.apply = apply
        self.state = last_good
        self.applied: str | None = None
        self.backoff = backoff or Backoff()
        self.stop = threading.Event()
        self.passes = 0

    # -- token ------------------------------------------------------------------------------

    def token(self) -> str:
        path = self.settings.token_file
        current = read_token(path)
        if current is not None:
            return current
        if not self.settings.registration_token:
            raise Rejected(401, f"no agent token in {path} and no registration token to get one")
        try:
            token = self.link.register(
                self.settings.registration_token, hostname=self.settings.hostname
            )
        except Rejected as e:
            if e.status == 409:  # paired already, and this agent lost its token
                raise Rejected(
                    409,
                    f"{e}; on the reconciler: edgefleet appliance reset "
                    f"{self.settings.appliance}",
                ) from e
            raise
        write_token(path, token)
        log.info("registered %s", self.settings.appliance)
        return token

    def _drop(self, token: str) -> None:
        """Forget a token the reconciler refused, unless it was replaced meanwhile (a
        rotation by ``edgefleet-agent rotate-token`` while a request was on its way)."""
        if read_token(self.settings.token_file) == token:
            self.settings.token_file.unlink(missing_ok=True)

    # -- one pass ---------------------------------------------------------------------------

    def step(self) -> float:
        """One pass: fetch (long-poll), apply, report. Returns how long to wait before the next."""
        token: str | None = None
        try:
            token = self.token()
            etag = self.state.etag() if self.state is not None else None
            fresh = self.link.desired(
                token, etag=etag, wait=self.settings.wait if self.passes else 0
            )
        except Unreachable as e:
            log.warning("reconciler unreachable: %s", e)
            self._apply_current(report=None)  # keep the site as it is, and fix drift
            return self.backoff.next()
        except Rejected as e:
            log.error("reconciler refused: %s", e)
            if e.status == 401 and token is not None:
                self._drop(token)  # register again if we can
            return self.backoff.next()
        except StateRefused as e:
            assert token is not None
            self._refused(token, e, e.digest)
            return self.backoff.next()
        self.backoff.reset()
        if fresh is not None:
            # a new state becomes the current one once admitted and applied; one whose
            # secrets do not open here is refused by the pass, before anything is applied
            self.passes += 1
            try:
                admitted = admit(fresh, appliance=self.settings.appliance)
                result = self.apply(admitted)
            except StateRefused as e:
                self._refused(token, e, fresh.digest)
                return self.backoff.next()
            self.state = admitted
            if self.on_state is not None:
                self.on_state(admitted)
            self._settle(result, report=token)
            return 0.0
        self._apply_current(report=token)
        return 0.0

    def _refused(self, token: str, error: StateRefused, digest: str | None) -> None:
        """Nothing of a refused state is applied; the last good one keeps running, and the
        reconciler hears why."""
        log.error("desired state refused: %s", error)
        self._apply_current(report=None)
        message = f"desired state refused: {error}"[:2000]
        valid = digest is not None and re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
        self._report(
            token,
            StatusReport(
                appliedDigest=self.applied,
                error=ApplyError(digest=digest, message=message) if valid and digest else None,
                health="unhealthy",
                events=[ReportedEvent(level="error", message=message)],
                agentVersion=AGENT_VERSION,
            ),
        )

    def _apply_current(self, *, report: str | None) -> None:
        self.passes += 1
        if self.state is None:
            if report is not None:
                self._report(report, StatusReport(health="healthy", agentVersion=AGENT_VERSION))
            return
        try:
            result = self.apply(self.state)
        except StateRefused as e:
            log.error("desired state refused: %s", e)
            return
        self._settle(result, report=report)

    def _settle(self, result: ApplyResult, *, report: str | None) -> None:
        """Keep what a pass applied, and report it (with ``report``, the agent's token)."""
        assert self.state is not None
        if result.ok:
            self.applied = result.digest
        for cluster in result.clusters:
            if not cluster.ok:
                log.warning("cluster %s: %s %s", cluster.name, cluster.phase, cluster.message)
        if report is not None:
            day2 = self.day2(self.state) if self.day2 is not None else ()
            self._report(report, status_report(result, applied=self.applied, day2=day2))

    def _report(self, token: str, report: StatusReport) -> None:
        try:
            self.link.report(token, report.model_dump(mode="json", exclude_none=True))
        except (Unreachable, Rejected) as e:
            log.warning("status not delivered: %s", e)

    def run(self) -> None:
        while not self.stop.is_set():
            pause = self.step()
            if pause:
                self.stop.wait(pause)


def read_token(path: Path) -> str | None:
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        return None
    return token or None


def write_token(path: Path, token: str) -> None:
    """Replace the token file at once (mode 0600): a reader sees the old or the new token."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(path.name + ".new")
    draft.unlink(missing_ok=True)
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token)
    os.replace(draft, path)


def rotate_token(link: AgentLink, token_file: Path, *, hostname: str) -> None:
    """Swap the agent's token for a new one, presenting the current one; the old one stops
    working at once (a running agent reads the new one on its next request)."""
    current = read_token(token_file)
    if current is None:
        raise Rejected(401, f"no agent token in {token_file} to rotate")
    write_token(token_file, link.register(current, hostname=hostname))
