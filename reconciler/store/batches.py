"""Writes that arrive together, committed together: callers hand in one item each, and one
thread (the leader) writes every item waiting in one transaction, so a wave of thousands of
agents reporting at once costs a commit per batch, not per report. Used by the rollout for
status reports.

A caller either waits in its own thread (:meth:`GroupCommit.submit`) or takes a future
(:meth:`GroupCommit.later`; :meth:`GroupCommit.soon` on an event loop, whose futures of a
batch are settled with one call into the loop, not one each). A batch that fails is
written again item by item, so an item's error reaches its own caller alone. When the
leader's item is written it hands the lead to the oldest waiting caller, or to a thread of
its own when that caller holds a future instead of a thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Waiting(Generic[T, R]):
    __slots__ = ("error", "finished", "future", "item", "lead", "result", "soon", "wake")

    def __init__(
        self,
        item: T,
        future: Future[R] | None = None,
        soon: asyncio.Future[R] | None = None,
    ) -> None:
        self.item = item
        self.future = future  # set once written, for a caller without a thread of its own
        self.soon = soon  # the same, for a caller on an event loop
        self.wake = threading.Event()  # finished, or made the leader
        self.lead = False
        self.finished = False
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """``write(items)`` writes items in one transaction and returns one result each; at
    most ``most`` go in one batch."""

    def __init__(self, write: Callable[[Sequence[T]], list[R]], *, most: int = 256) -> None:
        self._write = write
        self._most = most
        self._lock = threading.Lock()
        self._queue: deque[_Waiting[T, R]] = deque()
        self._leading = False

    def submit(self, item: T) -> R:
        """Write ``item`` (with whatever else is waiting); its result, or its error raised."""
        mine: _Waiting[T, R] = _Waiting(item)
        with self._lock:
            self._queue.append(mine)
            if not self._leading:
                self._leading = mine.lead = True
        if not mine.lead:
            mine.wake.wait()
        if mine.lead:
            self._lead(mine)
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]

    def later(self, item: T) -> Future[R]:
        """Write ``item`` with whatever else is waiting, without waiting for it: the future
        holds its result or its error."""
        future: Future[R] = Future()
        self._queue_threadless(_Waiting(item, future))
        return future

    def soon(self, item: T) -> asyncio.Future[R]:
        """:meth:`later` for a caller on an event loop: a future of this loop, settled with
        the others of its batch in one call into the loop (each call wakes the loop)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue_threadless(_Waiting(item, soon=future))
        return future

    def _queue_threadless(self, mine: _Waiting[T, R]) -> None:
        """Queue a caller that holds a future: when it leads, a thread of its own does."""
        with self._lock:
            self._queue.append(mine)
            if not self._leading:
                self._leading = mine.lead = True
        if mine.lead:
            self._lead_in_thread(mine)

    def _lead(self, mine: _Waiting[T, R]) -> None:
        try:
            while not mine.finished:
                with self._lock:
                    count = min(self._most, len(self._queue))
                    batch = [self._queue.popleft() for _ in range(count)]
                self._run(batch)
        finally:
            with self._lock:
                following = self._queue[0] if self._queue else None
                if following is None:
                    self._leading = False
                else:
                    following.lead = True
                    following.wake.set()
            if following is not None and (following.future or following.soon) is not None:
                self._lead_in_thread(following)

    def _lead_in_thread(self, mine: _Waiting[T, R]) -> None:
        def lead() -> None:
            try:
                self._lead(mine)
            except BaseException:  # nobody to raise it to: each future of the batch holds it
                return

        threading.Thread(target=lead, name="group-commit", daemon=True).start()

    def _run(self, batch: list[_Waiting[T, R]]) -> None:
        try:
            try:
                results = self._write([w.item for w in batch])
                for waiting, result in zip(batch, results, strict=True):
                    waiting.result = result
            except Exception:
                for waiting in batch:  # each alone: an error reaches its own caller only
                    try:
                        (waiting.result,) = self._write([waiting.item])
                    except Exception as e:
                        waiting.error = e
        except BaseException as e:  # the leader is stopping: nobody waits on it for ever
            for waiting in batch:
                if waiting.result is None and waiting.error is None:
                    waiting.error = e
            raise
        finally:
            loops: dict[asyncio.AbstractEventLoop, list[_Waiting[T, R]]] = {}
            for waiting in batch:
                waiting.finished = True
                waiting.wake.set()
                if waiting.future is not None:
                    if waiting.error is not None:
                        waiting.future.set_exception(waiting.error)
                    else:
                        waiting.future.set_result(waiting.result)  # type: ignore[arg-type]
                if waiting.soon is not None:
                    loops.setdefault(waiting.soon.get_loop(), []).append(waiting)
            for loop, settled in loops.items():
                try:
                    loop.call_soon_threadsafe(_settle, settled)
                except RuntimeError:  # that loop has closed: nobody awaits them any more
                    pass


def _settle(batch: list[_Waiting[T, R]]) -> None:
    """On their loop: each future of ``batch`` gets its result or its error."""
    for waiting in batch:
        future = waiting.soon
        if future is None or future.done():  # the caller gave up on it
            continue
        if waiting.error is not None:
            future.set_exception(waiting.error)
        else:
            future.set_result(waiting.result)  # type: ignore[arg-type]
