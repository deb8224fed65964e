"""Following the change log (:mod:`reconciler.store.changes`): every replica learns, within
a second, of the states served and tokens rotated by any other process, and hands them to
its notifier (which drops its caches and wakes the long-polls they concern).

It wakes on the ``NOTIFY`` a writer sends (PostgreSQL) and re-reads the log at least every
``recheck`` seconds anyway, so a lost notification costs at most that delay.
"""

from __future__ import annotations

import logging
import threading

from ..store import Store, StoreError
from .notifications import Notifier

log = logging.getLogger(__name__)


class ChangeFeed:
    def __init__(self, *, store: Store, notifier: Notifier, recheck: float = 1.0) -> None:
        self._store = store
        self._notifier = notifier
        self._recheck = recheck
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.seen = 0  # the last sequence number handed on

    def start(self) -> ChangeFeed:
        with self._store.read() as tx:
            self.seen = tx.changes.latest()
        self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def poll(self) -> int:
        """Hand on the changes other processes logged since the last call (this one's
        were handed on as they were made); returns how many were read."""
        with self._store.read() as tx:
            changes = tx.changes.since(self.seen)
            oldest = tx.changes.oldest()
        if not changes:
            return 0
        if oldest > self.seen + 1:  # fell behind the pruning: whatever is cached may be old
            log.warning("the change feed fell behind; every cached served state is dropped")
            self._notifier.forget_all()
        self.seen = changes[-1].seq
        fresh = self._notifier.from_elsewhere(changes)
        if fresh:
            self._notifier.publish(fresh)
        return len(changes)

    def _run(self) -> None:
        signal = self._store.change_signal()
        try:
            while not self._stop.is_set():
                signal.wait(self._recheck)
                try:
                    while self.poll() and not self._stop.is_set():
                        pass
                except StoreError as e:  # temporary: the next round reads again
                    log.warning("reading the change log failed: %s", e)
        finally:
            signal.close()
