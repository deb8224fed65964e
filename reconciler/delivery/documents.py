"""The document each appliance is served: the stored content with its revision and digest,
as canonical JSON bytes. Documents never change for a (digest, revision) pair, so the bytes
are cached. What each appliance is served is cached too: every change (made here or by
another replica, see :mod:`.feed`) reaches :meth:`DesiredDocuments.take` before any waiting
agent wakes, which loads the new documents in bulk, so a wave of thousands of agents costs
no database read per agent. ``ttl`` bounds how long an entry lives without word of a change.
Each document is signed once, with ``signer`` (the reconciler's key), when its bytes are made,
unless the render signed it already (:func:`presigner`: once rendered, on every core, at the
revision it is released at). A document is kept and sent as parts of the stored content's
bytes (those the release kept, when it is in memory) with the members placed between them: a
wave of ten thousand copies none of its 40 KB bodies (a copy into memory the process has
not touched for a while cost 85-300 us).

A state is served with its clusters' joins (:mod:`.joins`: the join token and the server to
join), which come from the store, not from Git: they are part of the signed bytes but not of
the digest, and the state's tag (``ETag``) is the digest with a fingerprint of the joins, so
an agent also hears of a new server address.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from agent.contract import ClusterJoin, DesiredState, canonical_json, served_etag

from ..rendering import Presigner
from ..store import Assignment, ChangeRecord, Store, Transaction
from .joins import Content, join_view, joins_for, parse
from .notifications import Notifier

Signer = Callable[[bytes], str]  # bytes -> the Edgefleet-Signature header value
Body = tuple[bytes | memoryview, ...]  # a served document: its parts, sent one after another
AHEAD_BYTES = 1 << 30  # documents made ahead of their wave, at most (10,000 take ~400 MiB)
AHEAD_CHUNK = 100  # documents made ahead between two looks for a rollout decision
# documents made at once are made on this many threads, a slice at a time: signing lets
# go of the interpreter, so two cores sign (ten thousand took 1.6 s on one, 0.9 s on two)
MAKERS = 2
MAKER_SLICE = 50
DECISION_WAIT = 30.0  # seconds at most that making documents ahead waits for a decision
# how long what an appliance is served is trusted without word of a change (every change
# reaches take() first): longer than the longest long-poll (300 s), so an agent whose wait
# ended is answered from memory, not by reading the store
SERVED_TTL = 600.0
PRESIGNED_REVISIONS = 4  # the revisions whose signatures made by the render are kept
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    digest: str
    revision: str
    body: Body
    signature: str | None = None  # None: served unsigned (no signing key)
    etag: str = ""  # the digest, with a fingerprint of the joins when there are some

    @property
    def tag(self) -> str:
        return self.etag or self.digest


Made = tuple[Body, str | None, str]  # body, signature, tag
# a stored content: as the store gives it, or its bytes (a release's, kept in memory)
Text = str | bytes
ToMake = tuple[Text, str, str, list[ClusterJoin] | None]  # text, digest, revision, joins

# A state's stored text is the canonical JSON of these members (what the digest covers);
# what is served adds the members after "clusters" in order, before "site", the last.
_CONTENT = ("appliance", "clusters", "site")
_ADDED = ("digest", "join", "revision")
_SPLICES = tuple(sorted(set(DesiredState.model_fields) - set(_ADDED))) == _CONTENT
_SITE = b'],"site":"'
# a cluster over two appliances or more, as canonical JSON writes its "appliances"
_SPANS = re.compile(r'"appliances":\["[^"\\]*","')
_SPANS_BYTES = re.compile(_SPANS.pattern.encode())


def served_body(
    text: Text, *, digest: str, revision: str, joins: list[ClusterJoin] | None
) -> bytes:
    """The served document: the canonical JSON of the stored content (``text``) with its
    revision, digest and joins (:func:`served_parts`, joined)."""
    return b"".join(served_parts(text, digest=digest, revision=revision, joins=joins))


def served_parts(
    text: Text, *, digest: str, revision: str, joins: list[ClusterJoin] | None
) -> tuple[bytes, ...] | tuple[memoryview, bytes, memoryview]:
    """:func:`served_body` in parts: the stored text's bytes with the members placed between
    them, rather than reading ten thousand documents and writing them again; the bytes are
    the same (a text of any other shape is read and written, in one part)."""
    added = f',"digest":{json.dumps(digest)}'
    if joins:
        listed = canonical_json([j.model_dump(mode="json") for j in joins]).decode()
        added += f',"join":{listed}'
    added += f',"revision":{json.dumps(revision)}'
    # bytes kept from the release are served as they are: a copy of 40 KB into memory the
    # process had not touched for a while cost 100-300 us, and a wave makes ten thousand
    encoded = text if isinstance(text, bytes) else text.encode()
    at = encoded.rfind(_SITE)
    site = encoded[at + len(_SITE) : -2]
    if (
        _SPLICES
        and at > 0
        and encoded.startswith(b'{"appliance":')
        and encoded.endswith(b'"}')
        and b'"' not in site
        and b"\\" not in site
    ):
        whole = memoryview(encoded)
        return whole[: at + 1], added.encode(), whole[at + 1 :]  # "site" begins at at + 1
    document: dict[str, object] = {**parse(encoded), "revision": revision, "digest": digest}
    if joins:
        document["join"] = [j.model_dump(mode="json") for j in joins]
    return (canonical_json(document),)


def presigner(signer: Signer) -> Presigner:
    """What a render signs its states with: the signature of each one's served document,
    where it may carry no joins (those are signed when served, with the joins of then)."""

    def presign(text: str, digest: str, revision: str) -> str | None:
        if may_join(text):
            return None
        return signer(served_body(text, digest=digest, revision=revision, joins=None))

    return presign


def body_size(body: Body) -> int:
    return sum(len(part) for part in body)


@functools.cache
def _makers() -> ThreadPoolExecutor:
    """The process's threads that make documents many at a time (started when first
    needed; idle, they cost nothing)."""
    return ThreadPoolExecutor(MAKERS, thread_name_prefix="documents-made")


def may_join(text: Text) -> bool:
    """Whether a stored state may carry joins: it has a cluster over several appliances
    (a state without one never does; one with one is read to find out)."""
    if isinstance(text, bytes):
        return _SPANS_BYTES.search(text) is not None
    return _SPANS.search(text) is not None


class DesiredDocuments:
    def __init__(
        self,
        *,
        store: Store,
        cache_size: int = 2048,
        notifier: Notifier | None = None,
        ttl: float = SERVED_TTL,
        signer: Signer | None = None,
    ) -> None:
        self._store = store
        self._signer = signer
        self._cache: OrderedDict[tuple[str, str, str], Made] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._ttl = ttl if notifier is not None else 0.0
        self._notifier = notifier
        self._served: dict[str, tuple[Served | None, float]] = {}
        self._generation: dict[str, int] = {}
        # documents made ahead for the appliances a rollout has yet to release, by (digest,
        # revision): a wave that opens then costs waking its agents, not making its documents
        self._ahead: dict[tuple[str, str], Made] = {}
        self._ahead_for: str | None = None  # the revision they are made for
        self._ahead_bytes = 0
        # of that revision, those served already (made ahead or not): not to be made again
        self._ahead_served: set[tuple[str, str]] = set()
        # of those made ahead, the states that may carry joins: what the joins are made of,
        # by digest (see joins.join_view), to tell whether they changed since
        self._ahead_joins: dict[str, Content] = {}
        self._ahead_asked: OrderedDict[str, None] = OrderedDict()  # revisions seen served
        # of that revision, the stored contents not made yet, by digest, as they were
        # offered: a wave that opens before they are made makes them without a read
        self._ahead_texts: dict[str, bytes] = {}
        # the signatures the render made, by revision and digest (see presigner): the last few
        self._presigned: OrderedDict[str, Mapping[str, str]] = OrderedDict()
        if notifier is not None:
            notifier.listen(self.take)
            notifier.on_forget_all(self.forget_all)

    def take(self, changes: Sequence[ChangeRecord]) -> None:
        """Served states changed: remember the new ones (their documents and joins read in
        one go), forget those whose new state is not named."""
        served = [c for c in changes if c.kind == "served"]
        if not served:
            return
        known = {
            c.appliance: c for c in served if c.digest is not None and c.revision is not None
        }
        self.forget({c.appliance for c in served})
        if not known or not self._ttl:
            return
        revisions = sorted({c.revision for c in known.values() if c.revision is not None})
        offered = {r: self._notifier.offered(r) for r in revisions} if self._notifier else {}
        self._take_presigned(revisions)
        for revision in revisions:
            self._make_ahead(revision, offered.get(revision, {}))
        with self._lock:
            ahead = {
                a: self._ahead.pop((c.digest or "", c.revision or ""), None)
                for a, c in known.items()
            }
            views = {
                a: self._ahead_joins.pop(c.digest or "")
                for a, c in known.items()
                if ahead[a] is not None and c.digest in self._ahead_joins
            }
            self._ahead_served.update(
                (c.digest or "", c.revision or "")
                for c in known.values()
                if c.revision == self._ahead_for
            )
            self._ahead_bytes -= sum(body_size(m[0]) for m in ahead.values() if m is not None)
        # made ahead with no joins to check: served as made, with no read (a wave's agents
        # are answered meanwhile, and a read beside them waits for the interpreter per row)
        served_now = {
            a: Served(c.digest or "", c.revision or "", *made)
            for a, c in known.items()
            if (made := ahead[a]) is not None and a not in views
        }
        # not made yet, their contents at hand and with no joins: made now, with no read
        unmade = {a: c for a, c in known.items() if a not in served_now and ahead[a] is None}
        at_hand = self._at_hand(unmade, offered)
        wanted = {a: (text, d, r, None) for a, (d, r, text) in at_hand.items()}
        being_made = self._serving(wanted)
        # meanwhile, those with joins or not in memory are read (the joins' contents parsed)
        rest = {a: c for a, c in known.items() if a not in served_now and a not in wanted}
        if rest:
            served_now.update(self._read_and_make(rest, ahead, views, offered))
        served_now.update(being_made())
        until = time.monotonic() + self._ttl
        with self._lock:
            for appliance, served_state in served_now.items():
                self._served[appliance] = (served_state, until)

    def _take_presigned(self, revisions: Sequence[str]) -> None:
        """Keep the signatures offered with ``revisions`` (a release this process recorded)."""
        if self._notifier is None:
            return
        for revision in revisions:
            signatures = self._notifier.presigned(revision)
            if signatures:
                with self._lock:
                    self._presigned[revision] = signatures
                    while len(self._presigned) > PRESIGNED_REVISIONS:
                        self._presigned.popitem(last=False)

    def _at_hand(
        self, known: Mapping[str, ChangeRecord], offered: Mapping[str, Mapping[str, bytes]]
    ) -> dict[str, tuple[str, str, bytes]]:
        """Of ``known``, those whose stored content is in memory (on offer, or kept to be
        made ahead) and may carry no joins: their digest, revision and content."""
        found: dict[str, tuple[str, str, bytes]] = {}
        with self._lock:
            for appliance, change in known.items():
                digest, revision = change.digest or "", change.revision or ""
                text = self._in_memory(digest, revision, offered)
                if text is not None:
                    found[appliance] = (digest, revision, text)
        # one the render signed carries no joins (see presigner): its 40 KB are not searched
        signed = {r: self._presigned.get(r, {}) for r in {f[1] for f in found.values()}}
        return {a: f for a, f in found.items() if f[0] in signed[f[1]] or not may_join(f[2])}

    def _in_memory(
        self, digest: str, revision: str, offered: Mapping[str, Mapping[str, bytes]]
    ) -> bytes | None:
        """The stored content of ``digest`` when it is in memory: on offer, or kept to be
        made ahead; called with the lock held."""
        text = offered.get(revision, {}).get(digest)
        if text is None and revision == self._ahead_for:
            text = self._ahead_texts.get(digest)
        return text

    def _read_and_make(
        self,
        known: Mapping[str, ChangeRecord],
        ahead: dict[str, Made | None],
        views: Mapping[str, Content],
        offered: Mapping[str, Mapping[str, bytes]],
    ) -> dict[str, Served]:
        """:meth:`take`'s states that were not made ahead, or carry joins: those made ahead
        whose joins are still the same, the others made now (their contents on offer, else
        read). An appliance the store does not know is left to be read on demand."""
        texts: dict[str, Text] = {}  # in memory: on offer, or kept to be made ahead
        with self._lock:
            for a, c in known.items():
                if c.digest and c.revision and ahead[a] is None:
                    text = self._in_memory(c.digest, c.revision, offered)
                    if text is not None:
                        texts[c.digest] = text
        with self._store.read() as tx:
            assignments = tx.assignments.get_many(known)
            digests = {c.digest for a, c in known.items() if c.digest and ahead[a] is None}
            texts.update(tx.documents.get_many(digests - texts.keys()))
            # only a state with a cluster over several appliances has joins: only it is read
            pairs = [(assignments[a], view) for a, view in views.items() if a in assignments]
            pairs += [
                (assignments[a], parse(texts[c.digest]))
                for a, c in known.items()
                if a in assignments and c.digest in texts and may_join(texts[c.digest])
            ]
            joins = joins_for(tx, pairs)
            # made ahead with joins that changed since: made again
            stale = {
                a
                for a in views
                if (made := ahead[a]) is not None
                and made[2] != served_etag(known[a].digest or "", joins.get(a) or [])
            }
            if stale:
                for a in stale:
                    ahead[a] = None
                wanted = {known[a].digest or "" for a in stale}
                texts.update(tx.documents.get_many(wanted - texts.keys()))
        # made outside the lock: requests answered from memory meanwhile do not wait
        served_now: dict[str, Served] = {}
        to_make: dict[str, ToMake] = {}
        for appliance, change in known.items():
            assert change.digest is not None and change.revision is not None
            content = texts.get(change.digest)
            made = ahead[appliance]
            if appliance not in assignments or (content is None and made is None):
                continue  # read on demand
            if made is not None:
                served_now[appliance] = Served(change.digest, change.revision, *made)
            else:
                joined = joins.get(appliance)
                to_make[appliance] = (content or "", change.digest, change.revision, joined)
        served_now.update(self._served_made(to_make))
        return served_now

    def made_ahead(self) -> int:
        """How many documents are made ahead, waiting for their wave."""
        return len(self._ahead)  # one read of a size: no lock to wait for

    def _make_ahead(self, revision: str, offered: Mapping[str, bytes]) -> None:
        """Once a revision is served, make in the background the documents of the appliances
        it has yet to release, from the contents ``offered`` or else read (those with a
        cluster over several appliances with their joins of now: checked when served)."""
        with self._lock:
            if revision in self._ahead_asked:
                return
            self._ahead_asked[revision] = None
            while len(self._ahead_asked) > 64:
                self._ahead_asked.popitem(last=False)
        threading.Thread(
            target=self._making_ahead,
            args=(revision, offered),
            name="documents-ahead",
            daemon=True,
        ).start()

    def _making_ahead(self, revision: str, offered: Mapping[str, bytes]) -> None:
        try:
            with self._store.read() as tx:
                targets = tx.rollouts.targets(revision)
            # those the render signed last (the hand-over makes them at little cost), and of
            # the others those with joins last (they cost the most): a wave that opens
            # meanwhile finds the most work done
            signed = self._presigned.get(revision, {})
            waiting = {
                t.digest: t.appliance
                for t in sorted(
                    targets, key=lambda t: (t.digest in signed, bool(t.shared), t.digest or "")
                )
                if t.digest is not None and t.released_at is None
            }
            if not waiting:
                return  # an older revision served again (a revert): nothing is to come
            with self._lock:  # what was made ahead for an earlier rollout is not needed
                self._ahead_for = revision
                self._ahead.clear()
                self._ahead_joins.clear()
                self._ahead_bytes = 0
                self._ahead_served.clear()
                self._ahead_texts = {d: offered[d] for d in waiting if d in offered}
            digests = list(waiting)
            for start in range(0, len(digests), AHEAD_CHUNK):
                chunk = digests[start : start + AHEAD_CHUNK]
                # a rollout decision goes first, even for a chunk made from the contents in
                # memory: making documents beside it (the bodies, a return from signing)
                # takes the interpreter from it at every row it writes, and the decision
                # opening a wave of ten thousand took 3.9-5.0 s instead of 1.3-1.6; a tick's
                # reads before it decides do not hold them (with no soak, that is when the
                # wave's documents get made); what is not made when its wave opens, the
                # hand-over makes on both cores
                if self._notifier is not None:
                    self._notifier.undecided(DECISION_WAIT)
                with self._lock:  # a wave that opened meanwhile was served without them
                    wanted = [d for d in chunk if (d, revision) not in self._ahead_served]
                found: dict[str, Text] = {d: offered[d] for d in wanted if d in offered}
                if len(found) < len(wanted):
                    with self._store.read() as tx:
                        found.update(tx.documents.get_many(set(wanted) - found.keys()))
                texts = {d: found[d] for d in wanted if d in found}  # in the order above
                # a state with a cluster over several appliances is made with its joins as
                # they are now; when it is served, they are checked to be the same still
                views = {d: join_view(parse(t)) for d, t in texts.items() if may_join(t)}
                joins = self._joins_now({waiting[d]: view for d, view in views.items()})
                wanted_made = [(t, d, revision, joins.get(waiting[d])) for d, t in texts.items()]
                made_now = self._make_many(wanted_made)
                made = {(d, revision): m for d, m in zip(texts, made_now, strict=True)}
                with self._lock:
                    made = {k: m for k, m in made.items() if k not in self._ahead_served}
                    size = sum(body_size(m[0]) for m in made.values())
                    if self._ahead_for != revision:
                        return  # a newer rollout began
                    if self._ahead_bytes + size > AHEAD_BYTES:
                        self._ahead_texts = {}  # enough is made ahead: the rest is read
                        return
                    for digest in chunk:
                        self._ahead_texts.pop(digest, None)
                    self._ahead.update(made)
                    self._ahead_joins.update(
                        (d, view) for d, view in views.items() if (d, revision) in made
                    )
                    self._ahead_bytes += size
        except Exception:  # only a head start is lost: each document is made when served
            log.exception("making the documents of %s ahead failed", revision[:12])
            with self._lock:
                if self._ahead_for == revision:
                    self._ahead_texts = {}

    def _joins_now(self, views: Mapping[str, Content]) -> dict[str, list[ClusterJoin]]:
        """The joins of each appliance whose state is known by ``views`` (join_view)."""
        if not views:
            return {}
        with self._store.read() as tx:
            assignments = tx.assignments.get_many(views)
            served = [(assignments[a], view) for a, view in views.items() if a in assignments]
            return joins_for(tx, served)

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
            if assignment is None:
                return None
            digest, revision = assignment.served_digest, assignment.served_revision
            if digest is None or revision is None:
                return None
            text = tx.documents.get(digest)
            if text is None:
                return None
            joins = self._joins(tx, assignment, text)
        with self._lock:
            body, signature, tag = self._made(text, digest, revision, joins)
        return Served(digest, revision, body, signature, tag)

    @staticmethod
    def _joins(tx: Transaction, assignment: Assignment, text: str) -> list[ClusterJoin] | None:
        if not may_join(text):
            return None
        return joins_for(tx, [(assignment, parse(text))]).get(assignment.appliance)

    def _made(
        self, text: Text, digest: str, revision: str, joins: list[ClusterJoin] | None
    ) -> Made:
        """The document's bytes, signature and tag, made once per (digest, revision, tag);
        called with the lock held."""
        tag = served_etag(digest, joins or [])
        key = (digest, revision, tag)
        made = self._cache.get(key)
        if made is not None:
            self._cache.move_to_end(key)
            return made
        made = self._make(text, digest, revision, joins)
        self._cache[key] = made
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return made

    def _served_made(self, wanted: Mapping[str, ToMake]) -> dict[str, Served]:
        """What each appliance is served, made now from ``(text, digest, revision, joins)``."""
        return self._serving(wanted)()

    def _serving(self, wanted: Mapping[str, ToMake]) -> Callable[[], dict[str, Served]]:
        """:meth:`_served_made`, begun: the call returned waits for it to end."""
        making = self._making(list(wanted.values()))

        def served() -> dict[str, Served]:
            made = zip(wanted.items(), making(), strict=True)
            return {a: Served(digest, revision, *m) for (a, (_, digest, revision, _)), m in made}

        return served

    def _make_many(self, wanted: Sequence[ToMake]) -> list[Made]:
        """:meth:`_make` of each ``(text, digest, revision, joins)``, in order; many at once
        on :data:`MAKERS` threads."""
        return self._making(wanted)()

    def _making(self, wanted: Sequence[ToMake]) -> Callable[[], list[Made]]:
        """:meth:`_make_many`, begun on the makers' threads when there are many (a few are
        made here and now): the call returned waits for them and gives them in order."""
        if len(wanted) < 2 * MAKER_SLICE or self._signer is None:
            made = [self._make(*w) for w in wanted]
            return lambda: made
        slices = [wanted[i : i + MAKER_SLICE] for i in range(0, len(wanted), MAKER_SLICE)]
        parts = _makers().map(lambda part: [self._make(*w) for w in part], slices)
        return lambda: [m for part in parts for m in part]

    def _make(
        self, text: Text, digest: str, revision: str, joins: list[ClusterJoin] | None
    ) -> Made:
        body: Body = served_parts(text, digest=digest, revision=revision, joins=joins)
        # signed by the render (with no joins only); one read of a dict: no lock to wait for
        signature = None if joins else self._presigned.get(revision, {}).get(digest)
        if signature is None and self._signer is not None:
            whole = b"".join(body)  # one part: that part, not copied
            signature, body = self._signer(whole), (whole,)
        return body, signature, served_etag(digest, joins or [])
