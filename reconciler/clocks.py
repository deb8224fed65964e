"""The clock every time-based decision reads (soak, maintenance windows, heartbeats).

A clock is any callable returning an aware UTC ``datetime``; tests pass one they move by
hand, so soak times and windows pass without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def epoch(clock: Clock) -> float:
    """The clock's time in seconds since the epoch, as the store keeps it."""
    return clock().timestamp()
