"""The document each appliance is served: the stored content with its revision and digest,
as canonical JSON bytes. Documents never change for a (digest, revision) pair, so the bytes
are cached. What each appliance is served is cached too: every change (made here or by
another replica, see :mod:`.feed`) reaches :meth:`DesiredDocuments.take` before any waiting
agent wakes, which loads the new documents in bulk, so a wave of thousands of agents costs
no database read per agent. ``ttl`` bounds how long an entry lives without word of a change.
Each document is signed once, with ``signer`` (the reconciler's key), when its bytes are made.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.contract import canonical_json

from ..store import ChangeRecord, Store
from .notifications import Notifier

Signer = Callable[[bytes], str]  # bytes -> the Edgefleet-Signature header value


@dataclass(frozen=True)
class Served:
    digest: str
    revision: str
    body: bytes
    signature: str | None = None  # None: served unsigned (no signing key)


class DesiredDocuments:
    def __init__(
        self,
        *,
        store: Store,
        cache_size: int = 2048,
        notifier: Notifier | None = None,
        ttl: float = 30.0,
        signer: Signer | None = None,
    ) -> None:
        self._store = store
        self._signer = signer
        self._cache: OrderedDict[tuple[str, str], tuple[bytes, str | None]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._ttl = ttl if notifier is not None else 0.0
        self._served: dict[str, tuple[Served | None, float]] = {}
        self._generation: dict[str, int] = {}
        if notifier is not None:
            notifier.listen(self.take)
            notifier.on_forget_all(self.forget_all)

    def take(self, changes: Sequence[ChangeRecord]) -> None:
        """Served states changed: remember the new ones (their documents read in one go),
        forget those whose new state is not named."""
        served = [c for c in changes if c.kind == "served"]
        if not served:
            return
        known = [c for c in served if c.digest is not None and c.revision is not None]
        self.forget({c.appliance for c in served})
        if not known or not self._ttl:
            return
        missing = {
            c.digest
            for c in known
            if c.digest is not None
            and c.revision is not None
            and self._cached(c.digest, c.revision) is None
        }
        contents: dict[str, str] = {}
        if missing:
            with self._store.read() as tx:
                contents = tx.documents.get_many(missing)
        until = time.monotonic() + self._ttl
        with self._lock:
            for change in known:
                assert change.digest is not None and change.revision is not None
                key = (change.digest, change.revision)
                made = self._cache.get(key)
                if made is None:
                    content = contents.get(change.digest)
                    if content is None:
                        continue  # read on demand
                    made = self._make(content, change.digest, change.revision)
                    self._cache[key] = made
                self._served[change.appliance] = (
                    Served(change.digest, change.revision, *made),
                    until,
                )
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def forget_all(self) -> None:
        with self._lock:
            cached = set(self._served)
        self.forget(cached)

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
            made = self._cached(digest, revision)
            if made is None:
                content = tx.documents.get(digest)
                if content is None:
                    return None
                made = self._make(content, digest, revision)
                self._remember(digest, revision, made)
        return Served(digest, revision, *made)

    def _make(self, content: str, digest: str, revision: str) -> tuple[bytes, str | None]:
        """The document's bytes and their signature."""
        body = canonical_json({**json.loads(content), "revision": revision, "digest": digest})
        return body, self._signer(body) if self._signer is not None else None

    def _cached(self, digest: str, revision: str) -> tuple[bytes, str | None] | None:
        with self._lock:
            made = self._cache.get((digest, revision))
            if made is not None:
                self._cache.move_to_end((digest, revision))
            return made

    def _remember(self, digest: str, revision: str, made: tuple[bytes, str | None]) -> None:
        with self._lock:
            self._cache[(digest, revision)] = made
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
