"""The document each appliance is served: the stored content with its revision and digest,
as canonical JSON bytes. Documents never change for a (digest, revision) pair, so the bytes
are cached; a poll costs one small read."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass

from agent.contract import canonical_json

from ..store import Store


@dataclass(frozen=True)
class Served:
    digest: str
    revision: str
    body: bytes


class DesiredDocuments:
    def __init__(self, *, store: Store, cache_size: int = 2048) -> None:
        self._store = store
        self._cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def current(self, appliance: str) -> Served | None:
        """What ``appliance`` is served now; None when it gets no state."""
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
