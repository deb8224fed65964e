"""A wave of changes reaches the listeners (the caches that make the documents) before the
requests they concern wake, a batch at a time: the first agents are answered while the
documents of the last are still being made."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack

import pytest

from reconciler.delivery.notifications import WAKE_BATCH, Notifier, Subscription
from reconciler.store import ChangeRecord


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(5)
    running.close()


def woken(subscriptions: list[Subscription], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not all(s.event.is_set() for s in subscriptions):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_wave_is_handed_to_the_listeners_and_woken_a_batch_at_a_time(
    loop: asyncio.AbstractEventLoop,
) -> None:
    notifier = Notifier()
    names = [f"store-{n:04d}-edge" for n in range(2 * WAKE_BATCH + 7)]
    stack = ExitStack()

    async def subscribe() -> dict[str, Subscription]:
        return {name: stack.enter_context(notifier.subscribe(name)) for name in names}

    waiting = asyncio.run_coroutine_threadsafe(subscribe(), loop).result(5)
    batches: list[list[str]] = []
    earlier_woken: list[bool] = []

    def listener(changes: Sequence[ChangeRecord]) -> None:
        batch = [c.appliance for c in changes]
        # a change is taken before its own waiter wakes
        assert not any(waiting[name].event.is_set() for name in batch)
        if batches:  # the batch before it is answered already
            earlier_woken.append(woken([waiting[name] for name in batches[-1]]))
        batches.append(batch)

    notifier.listen(listener)
    notifier.publish([ChangeRecord("served", name, at=1.0) for name in names])

    assert [len(b) for b in batches] == [WAKE_BATCH, WAKE_BATCH, 7]
    assert earlier_woken == [True, True]
    assert woken(list(waiting.values()))
    stack.close()
