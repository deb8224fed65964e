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


def test_a_wave_is_handed_to_the_listeners_whole_before_any_of_it_wakes(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """The documents of a whole wave are made before its first agent is answered: made
    beside the agents being answered, each waited for the interpreter."""
    notifier = Notifier()
    names = [f"store-{n:04d}-edge" for n in range(2 * WAKE_BATCH + 7)]
    stack = ExitStack()

    async def subscribe() -> dict[str, Subscription]:
        return {name: stack.enter_context(notifier.subscribe(name)) for name in names}

    waiting = asyncio.run_coroutine_threadsafe(subscribe(), loop).result(5)
    taken: list[list[str]] = []
    woken_then: list[bool] = []

    def listener(changes: Sequence[ChangeRecord]) -> None:
        taken.append([c.appliance for c in changes])
        woken_then.append(any(s.event.is_set() for s in waiting.values()))

    notifier.listen(listener)
    notifier.publish([ChangeRecord("served", name, at=1.0) for name in names])

    assert taken == [names]
    assert woken_then == [False]
    assert woken(list(waiting.values()))
    stack.close()


def test_answered_waits_for_every_woken_request_to_wait_again_or_leave(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """A request woken counts until it waits again or unsubscribes; one that unsubscribed
    before its wake landed, or that nothing woke, never counts."""
    notifier = Notifier()
    stack = ExitStack()

    async def subscribe(*names: str) -> list[Subscription]:
        return [stack.enter_context(notifier.subscribe(name)) for name in names]

    waits_again, leaves, unwoken = asyncio.run_coroutine_threadsafe(
        subscribe("store-1-edge", "store-2-edge", "store-3-edge"), loop
    ).result(5)
    assert notifier.answered(0.0)
    notifier.notify(["store-1-edge", "store-2-edge"])
    assert woken([waits_again, leaves])
    assert not notifier.answered(0.2)  # neither has waited again or left yet

    async def wait_again() -> bool:
        return await waits_again.wait(1.0)

    assert asyncio.run_coroutine_threadsafe(wait_again(), loop).result(5)  # it was woken
    assert not notifier.answered(0.2)  # store-2 has not
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(notifier.answered(5.0)))
    waiter.start()

    async def leave() -> None:
        stack.close()  # every request ends, store-2's woken one among them

    asyncio.run_coroutine_threadsafe(leave(), loop).result(5)
    waiter.join(5)
    assert results == [True]
    assert not unwoken.woken


def test_a_wake_that_lands_after_its_request_left_counts_nothing(
    loop: asyncio.AbstractEventLoop,
) -> None:
    notifier = Notifier()
    gone: list[Subscription] = []

    async def come_and_go() -> None:
        with notifier.subscribe("store-1-edge") as subscription:
            gone.append(subscription)
            notifier.notify(["store-1-edge"])  # its wake is scheduled on this loop...
        # ...and runs after the request left

    asyncio.run_coroutine_threadsafe(come_and_go(), loop).result(5)
    assert woken(gone)
    assert notifier.answered(0.0)


def test_answered_returns_at_once_on_an_event_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Waiting there would hold the loop that answers the requests it waits for."""
    notifier = Notifier()
    stack = ExitStack()

    async def subscribe() -> Subscription:
        return stack.enter_context(notifier.subscribe("store-1-edge"))

    subscription = asyncio.run_coroutine_threadsafe(subscribe(), loop).result(5)
    notifier.notify(["store-1-edge"])
    assert woken([subscription])

    async def ask() -> tuple[bool, float]:
        started = time.monotonic()
        return notifier.answered(5.0), time.monotonic() - started

    answered, took = asyncio.run_coroutine_threadsafe(ask(), loop).result(10)
    assert not answered and took < 1.0
    loop.call_soon_threadsafe(stack.close)
    assert notifier.answered(5.0)  # once it left


def test_work_that_can_wait_waits_while_a_decision_runs() -> None:
    notifier = Notifier()
    assert notifier.undecided(0.0)
    waited: list[bool] = []
    with notifier.deciding():
        with notifier.deciding():
            assert not notifier.undecided(0.1)
        assert not notifier.undecided(0.1)  # the other one still runs
        waiter = threading.Thread(target=lambda: waited.append(notifier.undecided(5.0)))
        waiter.start()
        time.sleep(0.2)
        assert not waited
    waiter.join(5)
    assert waited == [True]
