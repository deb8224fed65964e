"""At most two long-polls of ``GET /v1/desired`` per appliance: a newer one answers the oldest
(304), so no token holds more connections. Used by :mod:`.agents` on the event loop."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

PER_APPLIANCE = 2


class LongPolls:
    def __init__(self, per_appliance: int = PER_APPLIANCE) -> None:
        self.per_appliance = per_appliance
        self._open: dict[str, deque[asyncio.Future[None]]] = {}

    @contextmanager
    def opened(self, appliance: str, *, waits: bool = True) -> Iterator[asyncio.Future[None]]:
        """A long-poll of ``appliance`` while it waits; the future is done once a newer one
        has ended it. A request that does not wait is not counted and ends none."""
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not waits:
            yield ended
            return
        polls = self._open.setdefault(appliance, deque())
        polls.append(ended)
        while len(polls) > self.per_appliance:
            oldest = polls.popleft()
            if not oldest.done():
                oldest.set_result(None)
        try:
            yield ended
        finally:
            if ended in polls:
                polls.remove(ended)
            if not polls:
                self._open.pop(appliance, None)

    def open(self, appliance: str) -> int:
        return len(self._open.get(appliance, ()))
