"""Python's cyclic garbage collector, paused while a whole fleet is loaded, rendered and
recorded.

Those steps build hundreds of thousands of objects that live on (models, parse cache,
documents), and each full collection walks every object the process holds: in a server
with ten thousand agents, several seconds of a fleet-wide change went to collections that
found next to nothing. Reference counting still frees what is dropped; cycles made meanwhile
are collected once the collector runs again.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_paused = 0  # how many pauses are under way, in every thread
_was_enabled = False  # whether the collector ran before the first of them


@contextmanager
def paused_collector() -> Iterator[None]:
    """The collector off inside (processes forked inside inherit that). Pauses may overlap,
    in one thread or several (a reconcile and a rollout decision): the collector comes back
    when the last one ends, if it ran before the first began."""
    global _paused, _was_enabled
    with _lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                gc.enable()


def settle() -> None:
    """Once a revision is published: collect what the revisions before left in reference
    cycles, then set every object still alive aside from the collector (``gc.freeze``).

    A server holds millions of long-lived objects (the fleet's models, rendered states, the
    render memo); every collection that reached them walked them all, and those outside a
    pause (answering agents, making a wave's documents) took seconds of a fleet-wide
    change. Set aside, they cost collections nothing; the next settle puts them back in
    view first, so what a later revision drops is still collected.
    """
    with _lock:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
