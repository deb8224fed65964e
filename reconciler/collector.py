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
