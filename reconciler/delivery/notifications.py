"""Waking long-polling agents the moment their appliance is served a new state.

Each waiting request subscribes for its appliance and awaits an asyncio event; the rollout
service (for changes this process made) and the change feed (for those of other replicas)
call :meth:`Notifier.publish` from whatever thread they run on, and the event is set on the
waiter's own loop. Listeners (the caches of served states and tokens) see each change
before the waiters it concerns wake. Nothing polls the database while waiting.

Subscribe before reading the current state, then wait: a notification that lands between
the read and the wait is not lost, the event is already set. A woken request counts as
unanswered until it waits again or unsubscribes; :meth:`Notifier.answered` waits until none
does (a wave's agents are answered before its bookkeeping runs).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ..store import ChangeRecord

Listener = Callable[[Sequence[ChangeRecord]], None]
WAKE_BATCH = 500  # waiters woken with one call into their loop
MAX_PUBLISHED = 200_000  # own changes remembered until the feed reads them back


class Subscription:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, taken: Callable[[Subscription], None]
    ) -> None:
        self.loop = loop
        self.event = asyncio.Event()
        self.woken = False  # woken, and not yet waiting again or gone: unanswered
        self.closed = False  # unsubscribed: a wake that lands later is counted for nobody
        self._taken = taken

    async def wait(self, timeout: float, *, unless: asyncio.Future[None] | None = None) -> bool:
        """True when notified within ``timeout`` seconds; False at the timeout or as soon as
        ``unless`` is done (the client went away). Clears the event either way."""
        notified: asyncio.Future[Any] = asyncio.ensure_future(self.event.wait())
        try:
            waited = {notified} if unless is None else {notified, unless}
            await asyncio.wait(waited, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            return notified.done()
        finally:
            notified.cancel()
            self.event.clear()
            self._taken(self)


class Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[Subscription]] = {}
        self._listeners: list[Listener] = []
        self._forgetters: list[Callable[[], None]] = []
        # the logged changes this process published, until the change feed reads them back
        self._published: Counter[tuple[object, ...]] = Counter()
        # requests woken and not answered yet (see answered)
        self._unanswered = 0
        self._all_answered = threading.Condition(self._lock)
        self._deciding = 0  # rollout decisions under way (see deciding)
        self._decided = threading.Condition()
        # the contents of a revision being published and their signatures, by digest
        # (see offering)
        self._offered: tuple[str, Mapping[str, bytes], Mapping[str, str]] | None = None
        self.closed = False  # the server is stopping: nobody waits any more

    def close(self) -> None:
        """Wake every waiting request for good (the server is stopping: each answers what
        it has now instead of being cut off)."""
        self.closed = True
        with self._lock:
            appliances = list(self._waiting)
        self.notify(appliances)

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` with every change, before the waiting requests it concerns wake
        (caches of served states and tokens take the changes there)."""
        self._listeners.append(listener)

    @contextmanager
    def subscribe(self, appliance: str) -> Iterator[Subscription]:
        """Called on the event loop that will wait."""
        subscription = Subscription(asyncio.get_running_loop(), self._taken)
        with self._lock:
            self._waiting.setdefault(appliance, set()).add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                subscribers = self._waiting.get(appliance, set())
                subscribers.discard(subscription)
                if not subscribers:
                    self._waiting.pop(appliance, None)
            subscription.closed = True
            self._taken(subscription)

    def answered(self, timeout: float) -> bool:
        """Wait until every request woken so far has been answered (it waits again, or
        went away); False after ``timeout`` seconds. Returns at once on a thread
        that runs an event loop: the requests it would wait for are answered there."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return self._unanswered == 0
        with self._all_answered:
            return self._all_answered.wait_for(lambda: not self._unanswered, timeout)

    @contextmanager
    def deciding(self) -> Iterator[None]:
        """A rollout decision (or the hand-over of a wave it decided) runs inside: work
        that can wait (documents made ahead of their wave) waits for it in
        :meth:`undecided`. Beside a thread that keeps the interpreter busy, a decision's
        writes wait for the interpreter at each row: the decision opening a wave of ten
        thousand took seconds instead of one and a half. A tick enters once it has read
        what it decides on (its reads may take their time: the wave opens when it decides)."""
        with self._decided:
            self._deciding += 1
        try:
            yield
        finally:
            with self._decided:
                self._deciding -= 1
                if not self._deciding:
                    self._decided.notify_all()

    def undecided(self, timeout: float) -> bool:
        """Wait until no decision runs; False after ``timeout`` seconds."""
        with self._decided:
            return self._decided.wait_for(lambda: not self._deciding, timeout)

    @contextmanager
    def offering(
        self,
        revision: str,
        contents: Mapping[str, bytes],
        signatures: Mapping[str, str] | None = None,
    ) -> Iterator[None]:
        """Inside, :meth:`offered` gives the stored contents of ``revision`` that this
        process has in memory, as bytes (the release it just recorded): the listeners making
        its documents take them from here rather than read them back from the store; and
        :meth:`presigned` the signatures its render made of their documents, by digest."""
        self._offered = (revision, contents, signatures or {})
        try:
            yield
        finally:
            self._offered = None

    def offered(self, revision: str) -> Mapping[str, bytes]:
        """The contents of ``revision`` on offer, by digest (empty when there are none)."""
        offered = self._offered
        return offered[1] if offered is not None and offered[0] == revision else {}

    def presigned(self, revision: str) -> Mapping[str, str]:
        """The signatures of the documents of ``revision``'s contents on offer, by digest
        (empty when there are none)."""
        offered = self._offered
        return offered[2] if offered is not None and offered[0] == revision else {}

    def publish(self, changes: Sequence[ChangeRecord]) -> None:
        """Hand ``changes`` to the listeners, then wake every request waiting for an
        appliance whose served state changed; safe from any thread. The listeners take a
        wave of thousands whole before any of its agents wakes: its documents made beside
        the first agents being answered took several times as long (each return from signing
        waits for the interpreter), and the agents waited for them all the same. The wave
        wakes :data:`WAKE_BATCH` at a time."""
        logged = [_fingerprint(c) for c in changes if c.at]
        if logged:
            with self._lock:
                if len(self._published) > MAX_PUBLISHED:  # never read back: a feed stopped
                    self._published.clear()
                self._published.update(logged)
        for listener in self._listeners:
            listener(changes)
        for start in range(0, len(changes), WAKE_BATCH):
            batch = changes[start : start + WAKE_BATCH]
            self._wake({c.appliance for c in batch if c.kind == "served"})

    def from_elsewhere(self, changes: Sequence[ChangeRecord]) -> list[ChangeRecord]:
        """Of ``changes`` read back from the change log, those another process made: this
        one's own were handed on when they were made (doing it again would make and sign
        every document of a wave twice, and forget them in between)."""
        fresh = []
        with self._lock:
            for change in changes:
                key = _fingerprint(change)
                if self._published[key] > 0:
                    self._published[key] -= 1
                    if not self._published[key]:
                        del self._published[key]
                else:
                    fresh.append(change)
        return fresh

    def notify(self, appliances: Iterable[str]) -> None:
        """Wake every request waiting for one of ``appliances``, whose served state changed
        in a way the caches must read again."""
        self.publish([ChangeRecord("served", a, at=0.0) for a in set(appliances)])

    def forget_all(self) -> None:
        """Changes were missed: every listener drops what it cached, every waiter wakes."""
        for listener in self._forgetters:
            listener()
        with self._lock:
            appliances = set(self._waiting)
        self._wake(appliances)

    def on_forget_all(self, listener: Callable[[], None]) -> None:
        self._forgetters.append(listener)

    def _wake(self, changed: set[str]) -> None:
        """Set the events of those waiting for ``changed``: one call into each event loop
        (each call wakes the loop through its pipe, a system call per waiter otherwise)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Subscription]] = {}
        with self._lock:
            for appliance in changed:
                for subscription in self._waiting.get(appliance, ()):
                    by_loop.setdefault(subscription.loop, []).append(subscription)
        for loop, subscriptions in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._set_all, subscriptions)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass

    def _set_all(self, subscriptions: list[Subscription]) -> None:
        """On the subscriptions' loop: wake each, counted as unanswered until it waits
        again or unsubscribes."""
        woken = [s for s in subscriptions if not s.woken and not s.closed]
        for subscription in woken:
            subscription.woken = True
        for subscription in subscriptions:
            subscription.event.set()
        with self._lock:
            self._unanswered += len(woken)

    def _taken(self, subscription: Subscription) -> None:
        """On the subscription's loop: its request was answered (or went away)."""
        if not subscription.woken:
            return
        subscription.woken = False
        with self._lock:
            self._unanswered -= 1
            if not self._unanswered:
                self._all_answered.notify_all()

    def waiting(self) -> int:
        """How many requests are waiting (the long-polls open)."""
        with self._lock:
            return sum(len(s) for s in self._waiting.values())


def _fingerprint(change: ChangeRecord) -> tuple[object, ...]:
    """A change as the log holds it, sequence number aside."""
    return (change.kind, change.appliance, change.at, change.digest, change.revision)
