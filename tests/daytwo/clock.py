"""A clock the tests move by hand: schedules are checked at chosen instants, not by waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class ControlledClock:
    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)
        self._monotonic = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def sleep(self, seconds: float) -> None:
        self.advance(timedelta(seconds=seconds))

    def set(self, moment: datetime) -> None:
        assert moment.tzinfo is not None
        self._monotonic += max((moment - self._now).total_seconds(), 0.0)
        self._now = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)
