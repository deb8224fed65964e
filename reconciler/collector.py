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
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_collector() -> Iterator[None]:
    """The collector off inside (processes forked inside inherit that), as it was after;
    nested uses leave it to the outermost."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
