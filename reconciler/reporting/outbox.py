"""The outbox: deliveries sent from background workers, never from the rollout.

:meth:`Outbox.submit` puts a delivery on its destination's bounded queue and returns at once
(a full queue drops it, and the drop is recorded), so a receiver that is slow, stalled or
down never holds up a rollout decision, nor another destination's deliveries: each
destination has a worker of its own. A worker sends one delivery at a time with a timeout, retries
temporary failures (no answer, 408, 429, 5xx) with exponential backoff, gives up on
permanent ones (other 4xx) at once, and records every attempt in the store's
``deliveries`` table, in transactions of its own. A commit status that a newer one for the
same commit replaced before it went out is not sent (the forge would show the older).

Errors of this boundary are answers, not exceptions: each ends up as the delivery's state
and detail (``delivered``, ``retrying``, ``failed``, ``superseded``, ``dropped``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from ..store import DeliveryRecord, Store, StoreError

log = logging.getLogger(__name__)
CAPACITY = 1000
ATTEMPTS = 8
FIRST_RETRY = 2.0  # seconds; doubles each time
LAST_RETRY = 300.0
TIMEOUT = 10.0
DETAIL_CHARS = 300


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    redact: tuple[str, ...] = ()  # secrets (a token, a URL holding one) kept out of records


@dataclass(frozen=True)
class Delivery:
    destination: str  # shown to operators: "github acme/fleet", "webhook https://host"
    kind: str  # commit-status | webhook
    event: str
    revision: str | None
    request: Request
    key: str | None = None  # a newer delivery with the same key replaces this one


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    delivery: Delivery = field(compare=False)
    attempts: int = field(default=0, compare=False)
    record: int | None = field(default=None, compare=False)


class Outbox:
    def __init__(
        self,
        *,
        store: Store | None,
        client: httpx.Client | None = None,
        capacity: int = CAPACITY,
        attempts: int = ATTEMPTS,
        first_retry: float = FIRST_RETRY,
        last_retry: float = LAST_RETRY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        self._capacity = capacity
        self._lanes: dict[str, queue.Queue[_Due]] = {}  # destination -> its worker's queue
        self._workers: list[threading.Thread] = []
        self._attempts = attempts
        self._first_retry = first_retry
        self._last_retry = last_retry
        self._clock = clock
        self._seq = itertools.count()
        self._latest: dict[str, int] = {}  # key -> seq of the newest delivery submitted
        self._lock = threading.Lock()
        self._dropped = 0
        self._idle = threading.Condition()
        self._busy = 0  # deliveries submitted and not settled (delivered, failed, ...)
        self._stop = threading.Event()

    # -- what the reporter calls (the rollout's thread: never blocks) ------------------
    def submit(self, delivery: Delivery) -> bool:
        seq = next(self._seq)
        due = _Due(self._clock(), seq, delivery)
        try:
            self._lane(delivery.destination).put_nowait(due)
        except queue.Full:
            with self._lock:
                self._dropped += 1
            log.warning(
                "reporting queue full: %s for %s dropped", delivery.event, delivery.destination
            )
            return False
        with self._lock:
            if delivery.key is not None:
                self._latest[delivery.key] = seq
        with self._idle:
            self._busy += 1
        return True

    # -- for serve's shutdown and for tests ----------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """Whether every delivery submitted so far settled within ``timeout`` seconds
        (deliveries waiting to be retried have not)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout=timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers, waiting at most ``timeout`` seconds in all for a delivery on
        its way (one stalled for good is left to end with the process)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        if not any(worker.is_alive() for worker in workers):
            self._client.close()

    # -- the workers, one a destination ---------------------------------------------------
    def _lane(self, destination: str) -> queue.Queue[_Due]:
        with self._lock:
            lane = self._lanes.get(destination)
            if lane is None:
                lane = self._lanes[destination] = queue.Queue(maxsize=self._capacity)
                worker = threading.Thread(
                    target=self._run, args=(lane,), name="reporting-outbox", daemon=True
                )
                self._workers.append(worker)
                worker.start()
            return lane

    def _run(self, lane: queue.Queue[_Due]) -> None:
        waiting: list[_Due] = []  # retries, by when they are due
        while not self._stop.is_set():
            wait = 0.5 if not waiting else max(0.0, min(0.5, waiting[0].at - self._clock()))
            try:
                heapq.heappush(waiting, lane.get(timeout=wait))
            except queue.Empty:
                pass
            self._record_drops()
            while waiting and waiting[0].at <= self._clock() and not self._stop.is_set():
                due = heapq.heappop(waiting)
                retry = self._attempt(due)
                if retry is not None:
                    heapq.heappush(waiting, retry)
                else:
                    with self._idle:
                        self._busy -= 1
                        self._idle.notify_all()

    def _attempt(self, due: _Due) -> _Due | None:
        """Send once; the retry to schedule, or None when the delivery settled."""
        delivery = due.delivery
        now = self._clock()
        if due.record is None:
            due.record = self._save(
                delivery.destination, delivery.kind, delivery.event, delivery.revision,
                "sending", "",
            )  # fmt: skip
        if self._superseded(due):
            self._update(due.record, "superseded", due.attempts, "a newer result replaced it")
            return None
        attempts = due.attempts + 1
        state, detail = self._send(delivery.request)
        if state == "delivered" or state == "failed" or attempts >= self._attempts:
            final = "delivered" if state == "delivered" else "failed"
            self._update(due.record, final, attempts, detail)
            if final == "failed":
                log.warning(
                    "%s for %s failed after %d attempts: %s",
                    delivery.event, delivery.destination, attempts, detail,
                )  # fmt: skip
            return None
        delay = min(self._last_retry, self._first_retry * 2 ** (attempts - 1))
        self._update(due.record, "retrying", attempts, f"{detail}; next try in {delay:.0f}s")
        return _Due(now + delay, due.seq, delivery, attempts, due.record)

    def _send(self, request: Request) -> tuple[str, str]:
        """("delivered" | "retry" | "failed", what happened)."""
        try:
            answer = self._client.request(
                request.method, request.url, headers=request.headers, content=request.body
            )
        except httpx.HTTPError as e:
            return "retry", _redacted(f"{type(e).__name__}: {e}", request)
        detail = f"HTTP {answer.status_code}"
        if answer.is_success:
            return "delivered", detail
        text = answer.text.strip().replace("\n", " ")[:200]
        detail = _redacted(f"{detail}: {text}" if text else detail, request)
        temporary = answer.status_code in (408, 429) or answer.status_code >= 500
        return ("retry" if temporary else "failed"), detail

    def _superseded(self, due: _Due) -> bool:
        key = due.delivery.key
        with self._lock:
            return key is not None and self._latest.get(key, due.seq) > due.seq

    def _record_drops(self) -> None:
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            message = f"{dropped} results dropped: the reporting queue was full"
            self._save("reporting", "queue", "dropped", None, "dropped", message)

    # -- the store: the worker's own short transactions -----------------------------------
    def _save(
        self,
        destination: str,
        kind: str,
        event: str,
        revision: str | None,
        state: str,
        detail: str,
    ) -> int | None:
        if self._store is None:
            return None
        now = self._clock()
        record = DeliveryRecord(
            destination[:255], kind, event, revision, state, 0, detail, now, now
        )
        try:
            with self._store.write() as tx:
                found = tx.deliveries.add(record)
                tx.deliveries.prune()
            return found
        except StoreError as e:
            log.warning("recording a delivery failed: %s", e)
            return None

    def _update(self, record: int | None, state: str, attempts: int, detail: str) -> None:
        if self._store is None or record is None:
            return
        try:
            with self._store.write() as tx:
                tx.deliveries.update(
                    record, state=state, attempts=attempts, detail=detail[:DETAIL_CHARS],
                    at=self._clock(),
                )  # fmt: skip
        except StoreError as e:
            log.warning("recording a delivery failed: %s", e)


def _redacted(text: str, request: Request) -> str:
    for secret in request.redact:
        if secret:
            text = text.replace(secret, "***")
    return text[:DETAIL_CHARS]
