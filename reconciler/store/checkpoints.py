"""SQLite's write-ahead log copied back into the database file by a thread of its own.

By default the writer whose commit takes the log past a thousand pages copies it back
before its commit returns: for a release of ten thousand documents (some 400 MiB) that
was seconds added to the release, and to the first answers its agents got. Writers here
leave that to a :class:`Checkpointer`, which copies what was committed about once a second
without waiting for readers (a ``PASSIVE`` checkpoint); past :data:`BACKSTOP_PAGES` a writer
still does it itself, so the log stays bounded when no checkpointer runs (a command that
writes and exits; SQLite also copies the log back when the last connection closes).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

BACKSTOP_PAGES = 262_144  # 1 GiB of 4 KiB pages
EVERY = 1.0  # seconds between checkpoints while writes come in


class Checkpointer:
    """Started by the first write of a SQLite store; :meth:`committed` after each write."""

    def __init__(self, engine: Engine, *, every: float = EVERY) -> None:
        self._engine = engine
        self._every = every
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.copied = 0  # pages copied back so far (for tests and figures)

    def committed(self) -> None:
        """A write committed: copy it back soon."""
        self._wanted.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stop.is_set():
                    self._thread = threading.Thread(
                        target=self._run, name="sqlite-checkpoints", daemon=True
                    )
                    self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(10)

    def checkpoint(self) -> None:
        """Copy back what was committed, without waiting for readers."""
        with self._engine.connect() as conn:
            busy, pages, copied = conn.execute(text("PRAGMA wal_checkpoint(PASSIVE)")).one()
            conn.commit()
        if copied > 0:
            self.copied += int(copied)
        log.debug("checkpoint: %s of %s pages copied back (busy: %s)", copied, pages, busy)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait()
            if self._stop.wait(self._every):
                break
            self._wanted.clear()
            try:
                self.checkpoint()
            except Exception:  # the next write asks again; the backstop bounds the log
                log.warning("copying the write-ahead log back failed", exc_info=True)
