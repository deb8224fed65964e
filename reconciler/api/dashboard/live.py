"""Live pages: ``GET /live`` tells every open dashboard page, as server-sent events, that what
it shows may have changed; the page then fetches its live parts again (htmx).

One :class:`Pulse` per app reads the store's stamp (:meth:`FleetViews.stamp`, a handful of
indexed maxima) once a second while at least one page watches, however many do; a state
served by this process wakes it at once (the notifier's listeners). Reading the store rather
than only this process's notifier means a report or an admin's action handled by another
replica shows as well. The stamp also moves every ``quantum`` seconds, so that heartbeats
growing old (an appliance going offline) show without any write. Each page carries the
stamp it was rendered at (``data-stamp``) and listens with ``/live?since=STAMP``: a change
made between rendering and listening is announced at once, not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from fastapi.concurrency import run_in_threadpool

from ...clocks import Clock, epoch
from ...delivery import Notifier
from ...store import ChangeRecord, StoreError

log = logging.getLogger(__name__)
KEEP_ALIVE = 15.0  # seconds between comments that keep an idle stream open through proxies


class Pulse:
    def __init__(
        self,
        *,
        read: Callable[[], tuple[object, ...]],
        notifier: Notifier,
        clock: Clock,
        interval: float = 1.0,
        quantum: float = 30.0,
    ) -> None:
        self._read = read
        self._notifier = notifier
        self._clock = clock
        self._interval = interval
        self._quantum = quantum
        self._watchers: set[asyncio.Event] = set()
        self._poke: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None  # set once the stamp was read
        self.version = 0
        self.current: str | None = None  # the fingerprint of the stamp read last
        notifier.listen(self._served)

    def now(self) -> str:
        """The fingerprint of the store's stamp now (a page says what it shows)."""
        return self._fingerprint(self._read())

    async def watch(self, since: str | None = None) -> AsyncIterator[int | None]:
        """Yields the new version at each change (at once when the stamp is no longer
        ``since``), and None every KEEP_ALIVE seconds of quiet; ends when the server
        stops."""
        event = asyncio.Event()
        self._watchers.add(event)
        self._start()
        try:
            assert self._ready is not None
            await self._ready.wait()
            if since is not None and since != self.current:
                yield self.version
            while not self._notifier.closed:
                try:
                    await asyncio.wait_for(event.wait(), timeout=KEEP_ALIVE)
                except TimeoutError:
                    yield None
                    continue
                event.clear()
                if not self._notifier.closed:
                    yield self.version
        finally:
            self._watchers.discard(event)

    def _start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._loop = asyncio.get_running_loop()
        self._poke = asyncio.Event()
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        """Read the stamp while anyone watches; wake every watcher when it moves."""
        assert self._poke is not None and self._ready is not None
        last = None
        while self._watchers and not self._notifier.closed:
            try:
                self.current = self._fingerprint(await run_in_threadpool(self._read))
            except StoreError as e:  # temporary: read again at the next beat
                log.warning("live updates: the store could not be read: %s", e)
            if last is not None and self.current != last:
                self.version += 1
                for watcher in self._watchers:
                    watcher.set()
            last = self.current
            self._ready.set()
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), timeout=self._interval)
        for watcher in self._watchers:  # the server stops: let every stream end
            watcher.set()

    def _fingerprint(self, stamp: tuple[object, ...]) -> str:
        tick = int(epoch(self._clock) // self._quantum)
        return hashlib.sha256(repr((*stamp, tick)).encode()).hexdigest()[:16]

    def _served(self, _changes: Sequence[ChangeRecord]) -> None:
        """A state was served here (any thread): read the stamp now, not at the next beat."""
        loop, poke = self._loop, self._poke
        if loop is not None and poke is not None:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(poke.set)


def events(pulse: Pulse, since: str | None) -> AsyncIterator[str]:
    """The ``text/event-stream`` body of ``GET /live``."""

    async def stream() -> AsyncIterator[str]:
        yield "retry: 3000\n\n"
        async for version in pulse.watch(since):
            yield ": keep-alive\n\n" if version is None else f"event: change\ndata: {version}\n\n"

    return stream()
