"""The collector is paused while a fleet is loaded, rendered and recorded, and comes back as
it was, whatever happens inside."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from reconciler.collector import paused_collector, settle


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
