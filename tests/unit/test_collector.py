"""The collector is paused while a fleet is loaded, rendered and recorded, and comes back as
it was, whatever happens inside."""

from __future__ import annotations

import gc
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator

import pytest

from reconciler.collector import LaterCollection, paused_collector, settle


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_paused_inside_and_back_after() -> None:
    with paused_collector():
        assert not gc.isenabled()
        with paused_collector():  # nested: the inner one leaves it to the outer
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_pause_that_sets_aside_leaves_what_it_made_out_of_collections() -> None:
    """A command that loads or renders a fleet: what it made lives on, and the collection
    that would follow the pause would walk all of it to find nothing."""
    gc.collect()
    gc.unfreeze()
    try:
        with paused_collector(set_aside=True):
            made = [[n] for n in range(10_000)]
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(made)
    finally:
        gc.unfreeze()


def test_a_pause_inside_another_sets_nothing_aside() -> None:
    """In the server, the reconcile's pause decides (it sets aside once it published)."""
    gc.unfreeze()
    try:
        with paused_collector():
            with paused_collector(set_aside=True):
                pass
        with paused_collector(set_aside=True):
            with paused_collector():
                pass
            frozen_inside = gc.get_freeze_count()
        assert frozen_inside == 0
        assert gc.get_freeze_count() > 0  # the outer one asked
        gc.unfreeze()
        with paused_collector():
            with paused_collector(set_aside=True):
                pass
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


def test_pauses_that_overlap_in_two_threads_end_with_the_last() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with paused_collector():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with paused_collector():
            second_in.set()
            first_out.wait(5)
            seen.append(gc.isenabled())  # the first pause ended: this one still holds

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == [False]
    assert gc.isenabled()


def test_back_after_an_error() -> None:
    with pytest.raises(RuntimeError), paused_collector():
        raise RuntimeError("a bug some input reaches")
    assert gc.isenabled()


def test_left_off_when_it_was_off() -> None:
    gc.disable()
    with paused_collector():
        pass
    assert not gc.isenabled()


class _Node:
    me: object = None


def test_settle_collects_dropped_cycles_and_sets_the_living_aside() -> None:
    kept, dropped = _Node(), _Node()
    kept.me, dropped.me = kept, dropped  # two reference cycles; one is dropped
    gone = weakref.ref(dropped)
    del dropped
    try:
        settle()
        assert gone() is None
        assert gc.get_freeze_count() > 0
        assert gc.is_tracked(kept) and not any(o is kept for o in gc.get_objects(2))
        # dropped once set aside, a cycle is still collected by the next settle
        later = weakref.ref(kept)
        del kept
        settle()
        assert later() is None
    finally:
        gc.unfreeze()


def test_a_publish_sets_aside_at_once_and_collects_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Right after a publish nothing is walked: the living are set aside at once, and the
    cycles dropped meanwhile are collected at the first quiet moment, once, however many
    publishes came in between."""
    caplog.set_level(logging.INFO, logger="reconciler.collector")
    later = LaterCollection(after=0.3, check=0.05, quiet=0.5)
    kept = _Node()
    kept.me = kept
    gone = weakref.ref(kept)
    try:
        later.published()
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # set aside at once
        del kept
        later.published()  # a second revision before the collection: still one
        gc.collect()
        assert gone() is not None  # set aside: an ordinary collection does not walk it
        assert wait_for(lambda: later.collections > 0, 5)
        assert gone() is None
        time.sleep(0.5)
        assert later.collections == 1
        (logged,) = [r.getMessage() for r in caplog.records]
        assert re.fullmatch(r"collected [1-9]\d* objects, the rest set aside in \d+\.\d\ds", logged)
    finally:
        later.cancel()
        gc.unfreeze()


def test_the_later_collection_waits_for_a_pause_to_end() -> None:
    later = LaterCollection(after=0.05, check=0.05, quiet=0.5)
    dropped = _Node()
    dropped.me = dropped
    gone = weakref.ref(dropped)
    try:
        with paused_collector():  # a render or a rollout decision under way
            later.published()
            del dropped
            time.sleep(0.5)
            assert gone() is not None
        assert wait_for(lambda: later.collections > 0, 5)
        assert gone() is None
    finally:
        later.cancel()
        gc.unfreeze()


def test_the_later_collection_waits_for_a_quiet_moment() -> None:
    """While the process keeps a core busy (a wave being answered), nothing is collected;
    once it is quiet, the collection runs; past ``latest`` it runs whatever the load. (Quiet
    here is 5% of a core over half a second: however loaded the machine, a spinning thread
    gets more, and a sleeping process less.)"""
    later = LaterCollection(after=0.05, check=0.5, quiet=0.05)
    dropped = _Node()
    dropped.me = dropped
    gone = weakref.ref(dropped)
    busy = threading.Event()
    stop = threading.Event()

    def spin() -> None:
        busy.set()
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin)
    try:
        spinner.start()
        busy.wait(5)
        later.published()
        del dropped
        time.sleep(1.6)
        assert gone() is not None  # a core busy all along: not yet
        stop.set()
        spinner.join(5)
        assert wait_for(lambda: later.collections > 0, 5)
        assert gone() is None
        # past the latest moment, even a busy process is collected
        hurried = LaterCollection(after=0.0, latest=0.3, check=0.1, quiet=0.0)
        again = _Node()
        again.me = again
        gone = weakref.ref(again)
        hurried.published()
        del again
        assert wait_for(lambda: hurried.collections > 0, 5)
        assert gone() is None
        hurried.cancel()
    finally:
        stop.set()
        later.cancel()
        gc.unfreeze()


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
