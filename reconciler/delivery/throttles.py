"""How many registrations one client address may cause: a token bucket per address, so an
installer retrying is never hurt and a script trying names or tokens is slowed down.
Kept in memory, per process: each replica counts what reaches it."""

from __future__ import annotations

import threading
from dataclasses import dataclass

MAX_ADDRESSES = 10_000  # beyond this, the fullest buckets are forgotten first


@dataclass
class _Bucket:
    tokens: float
    at: float
    noted_at: float | None = None  # when a refusal over the rate was last worth an event


class Throttle:
    """``per_minute`` registrations per address, in bursts of up to that many."""

    def __init__(self, *, per_minute: float) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, address: str, *, now: float) -> bool:
        """Spend one registration of ``address``; False when it has none left."""
        with self._lock:
            bucket = self._refilled(address, now)
            if bucket.tokens < 1:
                return False
            bucket.tokens -= 1
            return True

    def worth_noting(self, address: str, *, now: float) -> bool:
        """Whether a refusal of ``address`` over its rate deserves an event: one a minute,
        so a flood of attempts cannot flood the event log."""
        with self._lock:
            bucket = self._refilled(address, now)
            if bucket.noted_at is not None and now - bucket.noted_at < 60:
                return False
            bucket.noted_at = now
            return True

    def retry_after(self, address: str, *, now: float) -> float:
        """Seconds until ``address`` may register again."""
        with self._lock:
            bucket = self._refilled(address, now)
            return max(0.0, (1 - bucket.tokens) * 60 / self.per_minute)

    def _refilled(self, address: str, now: float) -> _Bucket:
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= MAX_ADDRESSES:
                self._forget_fullest(now)
            bucket = self._buckets[address] = _Bucket(self.per_minute, now)
        gained = max(0.0, now - bucket.at) * self.per_minute / 60
        bucket.tokens = min(self.per_minute, bucket.tokens + gained)
        bucket.at = now
        return bucket

    def _forget_fullest(self, now: float) -> None:
        def level(bucket: _Bucket) -> float:
            return bucket.tokens + max(0.0, now - bucket.at) * self.per_minute / 60

        ranked = sorted(self._buckets, key=lambda a: level(self._buckets[a]), reverse=True)
        for address in ranked[: len(ranked) // 2 or 1]:
            del self._buckets[address]
