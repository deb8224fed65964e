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
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)
# after a revision is published, the full collection waits at least this long, then for a
# quiet moment (the canaries report, the documents of the next waves are made, a wave may
# open: the server's busiest minutes), but no longer than COLLECT_LATEST
COLLECT_AFTER = 10.0
COLLECT_LATEST = 1800.0
QUIET_SHARE = 0.25  # of one core, used by the whole process: quiet enough to collect
QUIET_CHECK = 2.0  # seconds over which the process's use is measured

_lock = threading.Lock()
_paused = 0  # how many pauses are under way, in every thread
_was_enabled = False  # whether the collector ran before the first of them
_setting_aside = False  # whether the first of them sets aside what was made inside


@contextmanager
def paused_collector(*, set_aside: bool = False) -> Iterator[None]:
    """The collector off inside (processes forked inside inherit that). Pauses may overlap,
    in one thread or several (a reconcile and a rollout decision): the collector comes back
    when the last one ends, if it ran before the first began.

    ``set_aside``: when this pause is the first and the last (a command loading or rendering
    a fleet), what was made inside is set aside from the collector as it comes back (see
    :func:`set_aside`): the fleet's models, its rendered states. The collection that would
    otherwise follow walks every one of them, to find next to nothing."""
    global _paused, _was_enabled, _setting_aside
    with _lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            _setting_aside = set_aside
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                if _setting_aside:
                    gc.freeze()
                gc.enable()


def settle(*, unless_paused: bool = False) -> int | None:
    """Once a revision is published: collect what the revisions before left in reference
    cycles, then set every object still alive aside from the collector (``gc.freeze``).

    A server holds millions of long-lived objects (the fleet's models, rendered states, the
    render memo); every collection that reached them walked them all, and those outside a
    pause (answering agents, making a wave's documents) took seconds of a fleet-wide
    change. Set aside, they cost collections nothing; the next settle puts them back in
    view first, so what a later revision drops is still collected.

    Returns how many unreachable objects it found; None when it did not run (with
    ``unless_paused``, while a pause is under way).
    """
    with _lock:
        if unless_paused and _paused:
            return None
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
    return found


def set_aside() -> None:
    """Set every object alive now aside from the collector (``gc.freeze``), at once:
    nothing is collected, so what was dropped in reference cycles waits for the next
    :func:`settle`."""
    with _lock:
        gc.freeze()


class LaterCollection:
    """:func:`settle` after each revision published, not at once but at the first quiet
    moment at least ``after`` seconds later (the whole process used at most ``quiet`` of
    a core over the last ``check`` seconds, and no pause is under way), or ``latest``
    seconds later whatever the process is doing.

    The full collection holds the interpreter for seconds at ten thousand sites (it walks
    every object the server holds). Right after a publish comes the busiest time: the
    canaries are answered and report, the documents of the next waves are made, and the
    next wave may open; a collection then delayed all of them. The objects the revision
    left are set aside at once instead (no collection walks them, as after a settle), and
    the cycles earlier revisions dropped are collected once the server is quiet: one
    collection for however many revisions were published meanwhile.
    """

    def __init__(
        self,
        *,
        after: float = COLLECT_AFTER,
        latest: float = COLLECT_LATEST,
        quiet: float = QUIET_SHARE,
        check: float = QUIET_CHECK,
    ) -> None:
        self.after = after
        self.latest = latest
        self.quiet = quiet
        self.check = check
        self.collections = 0  # how many ran
        self._pending = False
        self._guard = threading.Lock()
        self._stop = threading.Event()

    def published(self) -> None:
        set_aside()
        with self._guard:
            if self._pending:
                return  # one is due already: it collects this revision's leftovers too
            self._pending = True
        threading.Thread(target=self._collect, name="later-collection", daemon=True).start()

    def _collect(self) -> None:
        started = time.monotonic()
        cpu, at = time.process_time(), started
        while not self._stop.wait(self.check):
            now = time.monotonic()
            used = (time.process_time() - cpu) / max(now - at, 1e-9)
            cpu, at = time.process_time(), now
            due = now - started >= self.latest or (
                now - started >= self.after and used <= self.quiet
            )
            if due and self._settle():
                return

    def _settle(self) -> bool:
        """Collect now unless a pause is under way; whether it ran."""
        began = time.monotonic()
        found = settle(unless_paused=True)
        if found is None:
            return False
        with self._guard:
            self._pending = False
            self.collections += 1
        seconds = time.monotonic() - began
        log.info("collected %d objects, the rest set aside in %.2fs", found, seconds)
        return True

    def cancel(self) -> None:
        self._stop.set()
