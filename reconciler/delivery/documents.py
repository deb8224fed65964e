"""The document each appliance is served: the stored content with its revision and digest,
as canonical JSON bytes. Documents never change for a (digest, revision) pair, so the bytes
are cached. What an appliance is served is cached too, for ``ttl`` seconds: the notifier
drops an appliance's entry the moment this process publishes something new for it, and the
time limit bounds how long a change made by another replica goes unseen. An unchanged poll
then costs no database read."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from agent.contract import canonical_json

from ..store import Store
from .notifications import Notifier


@dataclass(frozen=True)
class Served:
    digest: str
    revision: str
    body: bytes


class DesiredDocuments:
    def __init__(
        self,
        *,
        store: Store,
        cache_size: int = 2048,
        notifier: Notifier | None = None,
        ttl: float = 2.0,
    ) -> None:
        self._store = store
        self._cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._ttl = ttl if notifier is not None else 0.0
        self._served: dict[str, tuple[Served | None, float]] = {}
        self._generation: dict[str, int] = {}
        if notifier is not None:
            notifier.listen(self.forget)

    def forget(self, appliances: set[str]) -> None:
        with self._lock:
            for appliance in appliances:
                self._served.pop(appliance, None)
                self._generation[appliance] = self._generation.get(appliance, 0) + 1

    def remembered(self, appliance: str) -> tuple[bool, Served | None]:
        """``(True, what is served)`` when it is cached and fresh, else ``(False, None)``:
        then ask :meth:`current`, which may read the store."""
        with self._lock:
            cached = self._served.get(appliance)
        if cached is not None and cached[1] > time.monotonic():
            return True, cached[0]
        return False, None

    def current(self, appliance: str) -> Served | None:
        """What ``appliance`` is served now; None when it gets no state."""
        if not self._ttl:
            return self._read(appliance)
        now = time.monotonic()
        with self._lock:
            cached = self._served.get(appliance)
            if cached is not None and cached[1] > now:
                return cached[0]
            generation = self._generation.get(appliance, 0)
        served = self._read(appliance)
        with self._lock:  # not if a notification came in while reading: that read is old
            if self._generation.get(appliance, 0) == generation:
                self._served[appliance] = (served, now + self._ttl)
        return served

    def _read(self, appliance: str) -> Served | None:
        with self._store.read() as tx:
            assignment = tx.assignments.get(appliance)
            if assignment is None or not assignment.declared:
                return None
            digest, revision = assignment.served_digest, assignment.served_revision
            if digest is None or revision is None:
                return None
            body = self._cached(digest, revision)
            if body is None:
                content = tx.documents.get(digest)
                if content is None:
                    return None
                document = {**json.loads(content), "revision": revision, "digest": digest}
                body = canonical_json(document)
                self._remember(digest, revision, body)
        return Served(digest=digest, revision=revision, body=body)

    def _cached(self, digest: str, revision: str) -> bytes | None:
        with self._lock:
            body = self._cache.get((digest, revision))
            if body is not None:
                self._cache.move_to_end((digest, revision))
            return body

    def _remember(self, digest: str, revision: str, body: bytes) -> None:
        with self._lock:
            self._cache[(digest, revision)] = body
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
