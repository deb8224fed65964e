"""Agent registration (enrolment) and authentication.

An appliance is paired by its first registration, with the fleet's bootstrap token (unless
the reconciler runs without one) or a one-time enrolment token bound to its ID; it receives
its own token, random and shown once (only its sha256 is stored). After that the ID is
registered again only by a request carrying its current token (a rotation), or once after
an admin reset it; anything else is refused (409) and the current token keeps working.
Registrations of IDs the repository does not declare are kept as discovered: capped, and
limited per client address together with every refusal. Every refusal is a warning event.
Every change of a token (rotation, reset) is a "token" change every replica follows, so the
old token stops working everywhere at once. Tokens are compared in constant time and never
appear in a message, a log line or an event.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ..clocks import Clock, epoch
from ..store import (
    AgentRecord,
    ChangeRecord,
    EnrolmentRecord,
    EventRecord,
    Store,
    StoreConflict,
    Transaction,
)
from .errors import (
    AlreadyRegistered,
    InvalidToken,
    RegistrationRefused,
    RegistrationsLimited,
    WrongAppliance,
)
from .joins import joins_changed
from .notifications import Notifier
from .throttles import Throttle

PRUNE_EXPIRED_AFTER = 86_400.0  # an expired enrolment token is still named as such for a day
# how long an agent token is trusted without reading the store: longer than the longest
# long-poll (300 s), so ten thousand agents that poll without pause are not ten thousand
# reads a minute (each as its previous wait ends, while a wave's reports are written)
TOKEN_TTL = 600.0


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
    rotated: bool = False  # the request carried the appliance's current token


@dataclass(frozen=True)
class Enrolment:
    appliance: str
    token: str
    expires_at: float
    declared: bool


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Registrations:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        bootstrap_token: str | None,
        token_ttl: float = TOKEN_TTL,
        notifier: Notifier | None = None,
        max_discovered: int = 1000,
        per_minute: float = 60.0,
    ) -> None:
        """``bootstrap_token`` None: only enrolment tokens pair appliances.
        ``max_discovered`` caps the undeclared appliances kept; ``per_minute`` is how many
        undeclared registrations and refusals one client address may cause a minute."""
        if bootstrap_token is not None and len(bootstrap_token) < 16:
            raise ValueError("the bootstrap token must be at least 16 characters")
        self._store = store
        self._clock = clock
        self._bootstrap = bootstrap_token.encode() if bootstrap_token is not None else None
        self._max_discovered = max_discovered
        self._throttle = Throttle(per_minute=per_minute)
        # token hash -> (appliance, expiry): an agent polling every few seconds is not looked
        # up in the database each time; a rotation or removal here or on another replica (the
        # change feed) drops the old token at once, a feed that lost track drops them all,
        # and the time limit bounds the rest
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

    # -- registering ------------------------------------------------------------------------

    def check_credential(self, credential: str, *, address: str) -> None:
        """Raises InvalidToken, after recording it, unless ``credential`` could register
        some appliance (the bootstrap token, an enrolment or an agent token): a request
        whose facts cannot even be read is answered by who sent it first."""
        if self._bootstrap is not None and hmac.compare_digest(
            credential.encode(), self._bootstrap
        ):
            return
        presented = token_hash(credential)
        with self._store.read() as tx:
            if tx.enrolments.by_token_hash(presented) or tx.agents.by_token_hash(presented):
                return
        raise self._refused(None, address, _unknown(), epoch(self._clock))

    def register(self, facts: AgentFacts, *, credential: str, address: str) -> Registration:
        """Pair ``facts.appliance`` or rotate its token. ``credential`` is the bootstrap
        token, an enrolment token, or the appliance's current token; ``address`` the
        client's. Raises InvalidToken or a RegistrationRefused, after recording why."""
        now = epoch(self._clock)
        token = new_token()
        try:
            with self._store.write() as tx:
                done, joins = self._register(tx, facts, credential, token, address, now)
        except StoreConflict:  # a racing request paired it first
            refusal: InvalidToken | RegistrationRefused = _already(facts.appliance)
        except (InvalidToken, RegistrationRefused) as e:
            refusal = e
        else:
            self._changed(facts.appliance)
            if joins and self._notifier is not None:
                self._notifier.publish(joins)
            return done
        raise self._refused(facts, address, refusal, now)

    def _register(
        self,
        tx: Transaction,
        facts: AgentFacts,
        credential: str,
        token: str,
        address: str,
        now: float,
    ) -> tuple[Registration, list[ChangeRecord]]:
        """The registration, and the served states whose joins it changes (the address of a
        cluster's server)."""
        presented = token_hash(credential)
        assignment = tx.assignments.get(facts.appliance)
        declared = assignment is not None and assignment.declared
        record = AgentRecord(
            appliance=facts.appliance,
            hostname=facts.hostname,
            ip=facts.ip,
            arch=facts.arch,
            agent_version=facts.agent_version,
            registered_at=now,
            last_seen=now,
        )
        holder = tx.agents.by_token_hash(presented)
        before = holder[0].ip if holder is not None else None
        if holder is not None:  # an agent token: a rotation, of its own appliance only
            agent, stored = holder
            if agent.appliance != facts.appliance or not hmac.compare_digest(stored, presented):
                raise WrongAppliance(
                    f"an agent token rotates its own appliance's token only, not "
                    f"{facts.appliance}'s"
                )
            kept = AgentRecord(**{**record.__dict__, "registered_at": agent.registered_at})
            if not tx.agents.rotate(kept, old_hash=presented, token_hash=token_hash(token)):
                raise InvalidToken("agent token refused: rotated or reset meanwhile")
            verb = "rotated its token"
        else:
            enrolment = self._credential(tx, facts, credential, presented, now)
            if tx.agents.get(facts.appliance) is not None:
                raise _already(facts.appliance)
            if not declared:
                self._admit_discovered(tx, address, now)
            if enrolment is not None and not tx.enrolments.take(presented):
                raise InvalidToken(f"the enrolment token of {facts.appliance} was used already")
            tx.agents.add(record, token_hash=token_hash(token))
            how = "a one-time enrolment token" if enrolment is not None else "the bootstrap token"
            verb = f"registered with {how}"
        where = "" if declared else "; not in the fleet repository: discovered"
        tx.changes.add([ChangeRecord("token", facts.appliance, at=now)])
        tx.events.add(
            [
                EventRecord(
                    at=now,
                    level="info" if declared else "warning",
                    kind="agent-registered",
                    message=(
                        f"{facts.appliance} {verb} from {facts.hostname} ({address}, reports "
                        f"{facts.ip}, {facts.arch}, agent {facts.agent_version}){where}"
                    ),
                    site=assignment.site if assignment else None,
                    appliance=facts.appliance,
                )
            ]
        )
        # the members of its clusters join it at the address it registered with
        moved = assignment is not None and declared and facts.ip != before
        joins = joins_changed(tx, assignment.site, at=now) if assignment and moved else []
        return (
            Registration(facts.appliance, token, declared, rotated=holder is not None),
            joins,
        )

    def _credential(
        self, tx: Transaction, facts: AgentFacts, credential: str, presented: str, now: float
    ) -> EnrolmentRecord | None:
        """The enrolment token presented (None: the bootstrap token); raises when it is
        neither, or not for this appliance, or expired."""
        enrolment = tx.enrolments.by_token_hash(presented)
        if enrolment is not None:
            if enrolment.appliance != facts.appliance:
                raise WrongAppliance(
                    f"this enrolment token is bound to another appliance, not {facts.appliance}"
                )
            if enrolment.expires_at <= now:
                raise InvalidToken(
                    f"the enrolment token of {facts.appliance} expired at "
                    f"{_when(enrolment.expires_at)}"
                )
            return enrolment
        if self._bootstrap is None or not hmac.compare_digest(credential.encode(), self._bootstrap):
            raise _unknown()
        return None

    def _admit_discovered(self, tx: Transaction, address: str, now: float) -> None:
        if tx.agents.undeclared() >= self._max_discovered:
            raise RegistrationsLimited(
                f"{self._max_discovered} discovered appliances are kept already: declare "
                "them in the fleet repository or reset them first"
            )
        if not self._throttle.take(address, now=now):
            raise _throttled(address, self._throttle.retry_after(address, now=now))

    def _refused(
        self,
        facts: AgentFacts | None,
        address: str,
        refusal: InvalidToken | RegistrationRefused,
        now: float,
    ) -> InvalidToken | RegistrationRefused:
        """Record a refusal as a warning event and return it to raise. A refusal counts
        against the address like a discovered registration: past its rate, the answer is
        "too many" and only one event a minute says so."""
        throttled = isinstance(refusal, RegistrationsLimited) and refusal.retry_after is not None
        if not throttled and not self._throttle.take(address, now=now):
            refusal = _throttled(address, self._throttle.retry_after(address, now=now))
            throttled = True
        if throttled and not self._throttle.worth_noting(address, now=now):
            return refusal
        what = (
            f"registration of {facts.appliance} from {facts.hostname} ({address})"
            if facts is not None
            else f"a registration from {address}"
        )
        with self._store.write() as tx:
            assignment = tx.assignments.get(facts.appliance) if facts is not None else None
            tx.events.add(
                [
                    EventRecord(
                        at=now,
                        level="warning",
                        kind="registration-refused",
                        message=f"{what} refused: {refusal}"[:2000],
                        site=assignment.site if assignment else None,
                        appliance=facts.appliance if facts is not None else None,
                    )
                ]
            )
        return refusal

    # -- an admin's hand ----------------------------------------------------------------------

    def reset(self, appliance: str, *, by: str) -> bool:
        """Forget the appliance's registration: its token stops working at once, and its
        next registration pairs it again. Returns whether it had one."""
        now = epoch(self._clock)
        with self._store.write() as tx:
            existed = tx.agents.remove(appliance)
            assignment = tx.assignments.get(appliance)
            tx.changes.add([ChangeRecord("token", appliance, at=now)])
            tx.events.add(
                [
                    EventRecord(
                        at=now,
                        level="warning",
                        kind="appliance-reset",
                        message=(
                            f"{appliance} reset by {by}: its token no longer works; its next "
                            "registration pairs it again"
                            if existed
                            else f"{appliance} reset by {by} (it was not registered)"
                        ),
                        site=assignment.site if assignment else None,
                        appliance=appliance,
                    )
                ]
            )
        self._changed(appliance)
        return existed

    def enrol(self, appliance: str, *, ttl: float, by: str) -> Enrolment:
        """A one-time token that registers ``appliance`` (and no other) until ``ttl``
        seconds from now. An unused earlier token of the same appliance stops working."""
        now = epoch(self._clock)
        token = new_token()
        expires = now + ttl
        with self._store.write() as tx:
            tx.enrolments.prune(before=now - PRUNE_EXPIRED_AFTER)
            tx.enrolments.put(
                EnrolmentRecord(appliance, token_hash(token), by, issued_at=now, expires_at=expires)
            )
            assignment = tx.assignments.get(appliance)
            declared = assignment is not None and assignment.declared
            paired = tx.agents.get(appliance) is not None
            notes = "" if declared else "; not in the fleet repository (yet): discovered"
            if paired:
                notes += "; registered already: it pairs only after a reset"
            tx.events.add(
                [
                    EventRecord(
                        at=now,
                        level="info",
                        kind="enrolment-issued",
                        message=(
                            f"one-time enrolment token for {appliance} issued by {by}, valid "
                            f"until {_when(expires)}{notes}"
                        ),
                        site=assignment.site if assignment else None,
                        appliance=appliance,
                    )
                ]
            )
        return Enrolment(appliance, token, expires, declared)

    # -- authenticating ---------------------------------------------------------------------

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

    def _changed(self, appliance: str) -> None:
        """The appliance's token changed: forget it here at once, tell the other replicas."""
        change = ChangeRecord("token", appliance, at=epoch(self._clock))
        if self._notifier is not None:
            self._notifier.publish([change])  # its listeners include self.take
        else:
            self.take([change])


def new_token() -> str:
    """A random token (256 bits, URL-safe) that never begins with "-": one that did would
    read as an option where an operator passes it on a command line
    (``edge-installer --registration-token TOKEN`` refused one in 64)."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


def _unknown() -> InvalidToken:
    return InvalidToken(
        "registration refused: not the bootstrap token, an unused enrolment token of this "
        "appliance, nor its current token"
    )


def _already(appliance: str) -> AlreadyRegistered:
    return AlreadyRegistered(
        f"{appliance} is registered already: its current token rotates it, or an admin "
        f"resets it first (edgefleet appliance reset {appliance})"
    )


def _throttled(address: str, retry_after: float) -> RegistrationsLimited:
    return RegistrationsLimited(
        f"too many registrations from {address}; retry in {max(1, round(retry_after))} s",
        retry_after=retry_after,
    )


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
