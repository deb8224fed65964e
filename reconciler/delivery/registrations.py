"""Agent registration and authentication.

An agent registers with the fleet's bootstrap token and receives its own token, random and
shown once; only its sha256 is stored. Re-registering the same appliance rotates the token:
the old one stops working at once. Tokens are compared in constant time and never appear in
a message, a log line or an event.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..clocks import Clock, epoch
from ..store import AgentRecord, ChangeRecord, EventRecord, Store
from .errors import InvalidToken
from .notifications import Notifier


@dataclass(frozen=True)
class AgentFacts:
    appliance: str
    hostname: str
    ip: str
    arch: str
    agent_version: str


@dataclass(frozen=True)
class Registration:
    appliance: str
    token: str
    declared: bool  # False: the appliance is listed as discovered and gets no state


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Registrations:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        bootstrap_token: str,
        token_ttl: float = 30.0,
        notifier: Notifier | None = None,
    ) -> None:
        if len(bootstrap_token) < 16:
            raise ValueError("the bootstrap token must be at least 16 characters")
        self._store = store
        self._clock = clock
        self._bootstrap = bootstrap_token.encode()
        # token hash -> (appliance, expiry): an agent polling every few seconds is not looked
        # up in the database each time; a rotation here or on another replica (the change
        # feed) drops the old token at once, and the time limit bounds the rest
        self._known: dict[str, tuple[str, float]] = {}
        self._known_lock = threading.Lock()
        self._ttl = token_ttl
        self._notifier = notifier
        if notifier is not None:
            notifier.listen(self.take)
            notifier.on_forget_all(self.forget_all)

    def forget_all(self) -> None:
        with self._known_lock:
            self._known = {}

    def take(self, changes: Sequence[ChangeRecord]) -> None:
        """Tokens rotated: forget the old ones of those appliances."""
        rotated = {c.appliance for c in changes if c.kind == "token"}
        if rotated:
            with self._known_lock:
                self._known = {h: k for h, k in self._known.items() if k[0] not in rotated}

    def verify_bootstrap(self, token: str) -> None:
        """Raises InvalidToken unless ``token`` is the fleet's bootstrap token."""
        if not hmac.compare_digest(token.encode(), self._bootstrap):
            raise InvalidToken("bootstrap token refused")

    def register(self, facts: AgentFacts, *, bootstrap_token: str) -> Registration:
        """Raises InvalidToken for a wrong bootstrap token."""
        self.verify_bootstrap(bootstrap_token)
        with self._known_lock:  # the appliance's old token stops working here at once
            self._known = {h: k for h, k in self._known.items() if k[0] != facts.appliance}
        token = secrets.token_urlsafe(32)
        now = epoch(self._clock)
        with self._store.write() as tx:
            before = tx.agents.get(facts.appliance)
            tx.agents.put(
                AgentRecord(
                    appliance=facts.appliance,
                    hostname=facts.hostname,
                    ip=facts.ip,
                    arch=facts.arch,
                    agent_version=facts.agent_version,
                    registered_at=now,
                    last_seen=now,
                ),
                token_hash=token_hash(token),
            )
            assignment = tx.assignments.get(facts.appliance)
            declared = assignment is not None and assignment.declared
            verb = "re-registered (token rotated)" if before else "registered"
            where = "" if declared else "; not in the fleet repository: discovered"
            rotation = ChangeRecord("token", facts.appliance, at=now)
            tx.changes.add([rotation])
            tx.events.add(
                [
                    EventRecord(
                        at=now,
                        level="info" if declared else "warning",
                        kind="agent-registered",
                        message=(
                            f"{facts.appliance} {verb} from {facts.hostname} ({facts.ip}, "
                            f"{facts.arch}, agent {facts.agent_version}){where}"
                        ),
                        site=assignment.site if assignment else None,
                        appliance=facts.appliance,
                    )
                ]
            )
        if self._notifier is not None:
            self._notifier.publish([rotation])
        return Registration(appliance=facts.appliance, token=token, declared=declared)

    def remembered(self, token: str) -> str | None:
        """The appliance of a token authenticated moments ago, without reading the store
        (None: ask :meth:`authenticate`)."""
        with self._known_lock:
            known = self._known.get(token_hash(token))
        return known[0] if known is not None and known[1] > time.monotonic() else None

    def authenticate(self, token: str) -> str:
        """The appliance an agent token belongs to; raises InvalidToken."""
        wanted = token_hash(token)
        now = time.monotonic()
        with self._known_lock:
            known = self._known.get(wanted)
        if known is not None and known[1] > now:
            return known[0]
        with self._store.read() as tx:
            found = tx.agents.by_token_hash(wanted)
        if found is None or not hmac.compare_digest(found[1], wanted):
            raise InvalidToken("agent token refused")
        with self._known_lock:
            if len(self._known) > 100_000:
                self._known.clear()
            self._known[wanted] = (found[0].appliance, now + self._ttl)
        return found[0].appliance
