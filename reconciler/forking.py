"""Work shared out to forked processes that inherit the caller's memory (a loaded repository,
the texts of its files): only each chunk's items go to them, and what they made comes back
pickled, in a file of a private folder read whole (through a pipe, each 64 KiB would wait
for the caller's interpreter lock, held by its busy threads). Used for the large steps of a
whole fleet: parsing its files, rendering its sites.

A forked process gets a copy of the caller's locks as they were: the work must not take a
lock another thread may hold (no logging, no git reads), only compute on what it inherited.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, TypeVar

from .collector import paused_collector

T = TypeVar("T")
R = TypeVar("R")

# the work of every map under way, by number: inherited by the processes, never sent (a
# closure over a whole fleet does not pickle, and sending it would copy the fleet)
_work: dict[int, Callable[[Any], Any]] = {}
_numbers = itertools.count()
_guard = threading.Lock()


def workers() -> int:
    """How many processes share the work: the cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def forked_map(work: Callable[[T], R], chunks: Sequence[T], processes: int) -> Iterator[R]:
    """``work(chunk)`` of each chunk, in order, computed by ``processes`` forked processes
    while the caller takes each result as it comes (and works on it meanwhile).

    They fork with the collector paused: a collection would touch every inherited object and
    copy the caller's memory page by page. An exception ``work`` raises is raised here."""
    with _registered(work) as number, _pool(processes) as (pool, folder):
        for path in pool.map(_run, itertools.repeat(number), itertools.repeat(folder), chunks):
            yield _take(path)


def shared_map(work: Callable[[T], R], chunks: Sequence[T], processes: int) -> list[R]:
    """``work(chunk)`` of each chunk, in order, computed by this process and ``processes``
    - 1 forked ones: this one takes the chunks from the front, the others from the back,
    until they meet. What this process makes is neither pickled nor copied."""
    results: dict[int, R] = {}
    if processes < 2:
        return [work(chunk) for chunk in chunks]
    with _registered(work) as number, _pool(processes - 1) as (pool, folder):
        queued = 2 * (processes - 1)  # chunks handed to the others at a time
        front, back = 0, len(chunks)
        pending: dict[Future[str], int] = {}
        while front < back or pending:
            while front < back and len(pending) < queued:
                back -= 1
                pending[pool.submit(_run, number, folder, chunks[back])] = back
            if front < back:
                results[front] = work(chunks[front])
                front += 1
            done = (
                [f for f in pending if f.done()]
                if front < back
                else wait(pending, return_when=FIRST_COMPLETED).done
            )
            for future in done:
                results[pending.pop(future)] = _take(future.result())
    return [results[i] for i in range(len(chunks))]


@contextmanager
def _registered(work: Callable[[Any], Any]) -> Iterator[int]:
    with _guard:
        number = next(_numbers)
        _work[number] = work
    try:
        yield number
    finally:
        with _guard:
            del _work[number]


@contextmanager
def _pool(processes: int) -> Iterator[tuple[ProcessPoolExecutor, str]]:
    """The processes, and the folder their results are written to (this user's alone: a
    rendered state may hold a secret)."""
    with paused_collector(), tempfile.TemporaryDirectory(prefix="edgefleet-") as folder:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
            yield pool, folder


def _run(number: int, folder: str, chunk: Any) -> str:
    """In a forked process: the work of ``chunk``, pickled into a file of ``folder``."""
    result = _work[number](chunk)
    fd, path = tempfile.mkstemp(dir=folder, suffix=".pickle")
    with open(fd, "wb") as file:
        pickle.dump(result, file, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _take(path: str) -> Any:
    with open(path, "rb") as file:
        data = file.read()
    os.unlink(path)
    return pickle.loads(data)
