"""The collector is paused while a fleet is loaded, rendered and recorded, and comes back as
it was, whatever happens inside."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from reconciler.collector import paused_collector


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


def test_back_after_an_error() -> None:
    with pytest.raises(RuntimeError), paused_collector():
        raise RuntimeError("a bug some input reaches")
    assert gc.isenabled()


def test_left_off_when_it_was_off() -> None:
    gc.disable()
    with paused_collector():
        pass
    assert not gc.isenabled()
