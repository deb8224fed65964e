"""Writes that arrive together are committed together, each caller gets its own result or
error, and nothing waits forever."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from reconciler.store import GroupCommit


class Writer:
    """Writes numbers; a batch holding a negative one fails whole, as a transaction would."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.hold = hold
        self.batches: list[list[int]] = []
        self.lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> list[int]:
        if self.hold is not None:
            self.hold.wait(5)  # the first writer holds on while the others queue up
        if any(i < 0 for i in items):
            raise ValueError(f"refused {min(items)}")
        with self.lock:
            self.batches.append(list(items))
        return [i * 10 for i in items]


def submit_all(commit: GroupCommit[int, int], items: list[int]) -> list[int | str]:
    def one(item: int) -> int | str:
        try:
            return commit.submit(item)
        except ValueError as e:
            return str(e)

    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(one, items))


def test_items_waiting_together_are_written_in_one_batch() -> None:
    hold = threading.Event()
    writer = Writer(hold)
    commit: GroupCommit[int, int] = GroupCommit(writer)
    items = list(range(1, 41))
    threading.Timer(0.3, hold.set).start()
    assert submit_all(commit, items) == [i * 10 for i in items]
    written = [i for batch in writer.batches for i in batch]
    assert sorted(written) == items  # each once
    assert len(writer.batches) < len(items) and max(map(len, writer.batches)) > 1


def test_an_error_reaches_its_own_caller_only() -> None:
    hold = threading.Event()
    writer = Writer(hold)
    commit: GroupCommit[int, int] = GroupCommit(writer)
    threading.Timer(0.3, hold.set).start()
    results = submit_all(commit, [1, 2, -3, 4, 5, -6, 7])
    assert results == [10, 20, "refused -3", 40, 50, "refused -6", 70]
    assert sorted(i for batch in writer.batches for i in batch) == [1, 2, 4, 5, 7]


def test_batches_hold_at_most_the_limit() -> None:
    hold = threading.Event()
    writer = Writer(hold)
    commit: GroupCommit[int, int] = GroupCommit(writer, most=4)
    threading.Timer(0.3, hold.set).start()
    items = list(range(30))
    assert submit_all(commit, items) == [i * 10 for i in items]
    assert max(map(len, writer.batches)) <= 4


def test_one_caller_alone_writes_its_own_item() -> None:
    writer = Writer()
    commit: GroupCommit[int, int] = GroupCommit(writer)
    assert commit.submit(3) == 30 and writer.batches == [[3]]
    with pytest.raises(ValueError, match="refused -1"):
        commit.submit(-1)
    assert commit.submit(4) == 40  # a failure leaves no one leading: the next one writes


def test_a_leader_stopped_mid_write_leaves_no_caller_waiting() -> None:
    hold = threading.Event()
    calls = 0

    def write(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            hold.wait(5)  # the others queue up behind this first write
            return [i for i in items]
        raise KeyboardInterrupt  # not an Exception: the leader's thread is stopping

    commit: GroupCommit[int, int] = GroupCommit(write)
    threading.Timer(0.3, hold.set).start()

    results: dict[int, str] = {}

    def one(item: int) -> None:
        try:
            results[item] = str(commit.submit(item))
        except KeyboardInterrupt:
            results[item] = "stopped"

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(6)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)  # the first one leads
    for thread in threads:
        thread.join(10)
    assert not any(t.is_alive() for t in threads), "callers still waiting"
    assert results[0] == "0" and sorted(results) == list(range(6))
    assert "stopped" in [results[i] for i in range(1, 6)]


def test_callers_without_a_thread_get_futures_written_together() -> None:
    hold = threading.Event()
    writer = Writer(hold)
    commit: GroupCommit[int, int] = GroupCommit(writer)
    futures = [commit.later(i) for i in range(1, 51)]  # the first one's thread is held
    hold.set()
    assert [f.result(5) for f in futures] == [i * 10 for i in range(1, 51)]
    assert sorted(i for batch in writer.batches for i in batch) == list(range(1, 51))
    assert len(writer.batches) <= 3  # one for the first, then the 49 queued meanwhile


def test_a_future_holds_its_own_error_and_mixed_callers_each_get_theirs() -> None:
    hold = threading.Event()
    writer = Writer(hold)
    commit: GroupCommit[int, int] = GroupCommit(writer, most=3)
    futures = {i: commit.later(i) for i in (1, -2, 3)}
    threading.Timer(0.3, hold.set).start()
    waited = submit_all(commit, [4, -5, 6, 7])  # threads queue behind the futures' batches
    assert waited == [40, "refused -5", 60, 70]
    assert futures[1].result(5) == 10 and futures[3].result(5) == 30
    with pytest.raises(ValueError, match="refused -2"):
        futures[-2].result(5)
    assert max(map(len, writer.batches)) <= 3


def test_a_leader_thread_stopped_mid_write_fails_its_futures_and_the_next_leads() -> None:
    calls = 0

    def write(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyboardInterrupt  # the leading thread is stopping
        return [i * 10 for i in items]

    commit: GroupCommit[int, int] = GroupCommit(write)
    first = commit.later(1)
    with pytest.raises(KeyboardInterrupt):
        first.result(5)
    assert commit.later(2).result(5) == 20  # nobody is left leading: the next one writes
    assert commit.submit(3) == 30


def test_callers_on_an_event_loop_are_settled_a_batch_at_a_time() -> None:
    """Each future of a batch gets its own result or error, with one call into the loop
    for the whole batch (each call wakes the loop: a wave's reports woke it thousands of
    times)."""
    hold = threading.Event()
    writer = Writer(hold)
    commit: GroupCommit[int, int] = GroupCommit(writer)
    loop = asyncio.new_event_loop()
    calls: list[object] = []
    real = loop.call_soon_threadsafe

    def counted(callback: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(callback)
        return real(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counted  # type: ignore[method-assign]

    async def report_all() -> list[int | str]:
        futures = [commit.soon(i) for i in (1, *range(2, 41), -41)]  # the first is held
        threading.Timer(0.2, hold.set).start()
        results: list[int | str] = []
        for future in futures:
            try:
                results.append(await asyncio.wait_for(future, 5))
            except ValueError as e:
                results.append(str(e))
        return results

    try:
        results = loop.run_until_complete(report_all())
    finally:
        loop.close()
    assert results == [i * 10 for i in range(1, 41)] + ["refused -41"]
    settled = [c for c in calls if getattr(c, "__name__", "") == "_settle"]
    assert 1 <= len(settled) <= len(writer.batches) + 1  # one per batch, not one per item
    assert len(settled) < 10
