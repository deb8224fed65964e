"""Which replica reconciles: the one holding the store's leadership lock runs the reconcile
loop; the others serve agents and wait to take over. A replica that dies (even with -9)
frees the lock with its database session, and another starts its loop within ``retry``
seconds, carrying on from the recorded state (a revision recorded before is not recorded
again)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..store import StoreError
from ..store.replicas import Leadership
from .watching import Loop

log = logging.getLogger(__name__)


class Replica:
    def __init__(
        self, *, leadership: Leadership, make_loop: Callable[[], Loop], retry: float = 2.0
    ) -> None:
        self._leadership = leadership
        self._make_loop = make_loop
        self._retry = retry
        self.stop = threading.Event()
        self._loop: Loop | None = None
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return self._loop is not None

    def poke(self) -> None:
        """Fetch now (a push webhook): only the loop of the leader does."""
        loop = self._loop
        if loop is not None:
            loop.poke.set()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    held = self._leadership.acquire()
                except StoreError as e:
                    log.warning("cannot reach the store for the leadership: %s", e)
                    held = False
                if held and self._loop is None:
                    self._start()
                elif not held and self._loop is not None:
                    log.warning("lost the leadership: this replica stops reconciling")
                    self._halt()
                self.stop.wait(self._retry)
        finally:
            self._halt()
            self._leadership.release()

    def _start(self) -> None:
        log.info("this replica reconciles the repository")
        self._loop = self._make_loop()
        self._thread = threading.Thread(target=self._loop.run, name="reconcile-loop", daemon=True)
        self._thread.start()

    def _halt(self) -> None:
        if self._loop is not None:
            self._loop.stop.set()
            self._loop.poke.set()
            if self._thread is not None:
                self._thread.join(30)
            self._loop = None
            self._thread = None
