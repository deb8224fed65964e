"""Writes that arrive together, committed together: threads hand in one item each, and one of
them (the leader) writes every item waiting in one transaction, so a wave of thousands of
agents reporting at once costs a commit per batch, not per report. Used by the rollout for
status reports.

A batch that fails is written again item by item, so an item's error reaches its own caller
alone. When the leader's item is written it hands the lead to the oldest waiting caller.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Waiting(Generic[T, R]):
    __slots__ = ("error", "finished", "item", "lead", "result", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
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
            try:
                while not mine.finished:
                    with self._lock:
                        count = min(self._most, len(self._queue))
                        batch = [self._queue.popleft() for _ in range(count)]
                    self._run(batch)
            finally:
                with self._lock:
                    if self._queue:
                        following = self._queue[0]
                        following.lead = True
                        following.wake.set()
                    else:
                        self._leading = False
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]

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
            for waiting in batch:
                waiting.finished = True
                waiting.wake.set()
