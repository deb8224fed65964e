"""A clock the tests move by hand: soak times and maintenance windows pass without sleeping."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

# A Monday, noon UTC: outside every window the fleets below declare.
START = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


class ManualClock:
    def __init__(self, start: datetime = START) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when
