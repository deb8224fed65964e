"""Waking long-polling agents the moment their appliance is served a new state.

Each waiting request subscribes for its appliance and awaits an asyncio event; the rollout
service (for changes this process made) and the change feed (for those of other replicas)
call :meth:`Notifier.publish` from whatever thread they run on, and the event is set on the
waiter's own loop. Listeners (the caches of served states and tokens) see each change
before the waiters it concerns wake. Nothing polls the database while waiting.

Subscribe before reading the current state, then wait: a notification that lands between
the read and the wait is not lost, the event is already set.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..store import ChangeRecord

Listener = Callable[[Sequence[ChangeRecord]], None]
WAKE_BATCH = 500  # changes handed to the listeners, and woken, at a time
MAX_PUBLISHED = 200_000  # own changes remembered until the feed reads them back


class Subscription:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()

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


class Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[Subscription]] = {}
        self._listeners: list[Listener] = []
        self._forgetters: list[Callable[[], None]] = []
        # the logged changes this process published, until the change feed reads them back
        self._published: Counter[tuple[object, ...]] = Counter()
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
        subscription = Subscription(asyncio.get_running_loop())
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

    def publish(self, changes: Sequence[ChangeRecord]) -> None:
        """Hand ``changes`` to the listeners, then wake every request waiting for an
        appliance whose served state changed; safe from any thread. A wave of thousands
        goes :data:`WAKE_BATCH` at a time, so its first agents are answered while the
        documents of the last are still being made."""
        logged = [_fingerprint(c) for c in changes if c.at]
        if logged:
            with self._lock:
                if len(self._published) > MAX_PUBLISHED:  # never read back: a feed stopped
                    self._published.clear()
                self._published.update(logged)
        for start in range(0, len(changes), WAKE_BATCH):
            batch = changes[start : start + WAKE_BATCH]
            for listener in self._listeners:
                listener(batch)
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
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Event]] = {}
        with self._lock:
            for appliance in changed:
                for subscription in self._waiting.get(appliance, ()):
                    by_loop.setdefault(subscription.loop, []).append(subscription.event)
        for loop, events in by_loop.items():
            try:
                loop.call_soon_threadsafe(_set_all, events)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass

    def waiting(self) -> int:
        """How many requests are waiting (the long-polls open)."""
        with self._lock:
            return sum(len(s) for s in self._waiting.values())


def _set_all(events: list[asyncio.Event]) -> None:
    for event in events:
        event.set()


def _fingerprint(change: ChangeRecord) -> tuple[object, ...]:
    """A change as the log holds it, sequence number aside."""
    return (change.kind, change.appliance, change.at, change.digest, change.revision)
