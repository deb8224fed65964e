"""The served document is the stored content with its revision, digest and joins placed in
it: the same bytes as reading the content and writing it all again as canonical JSON, for
any content (Hypothesis), including strings that look like the members placed."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any
from unittest.mock import patch

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.contract import ClusterJoin, canonical_json
from agent.signatures import key_id, sign, verify
from reconciler.delivery import Notifier
from reconciler.delivery.documents import (
    MAKER_SLICE,
    DesiredDocuments,
    may_join,
    presigner,
    served_body,
    served_parts,
)
from reconciler.store import (
    Assignment,
    ChangeRecord,
    RevisionRecord,
    RolloutRecord,
    RolloutTarget,
    Store,
)

NAMES = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
# strings that look like the members the served document adds, or like its last member
TRICKY = st.sampled_from(
    ['],"site":"x"}', '"}', '{"appliance":', ',"digest":"d"', "\\", '"', "é ✓", "\u2028", "\x00"]
)
TEXT = st.text(max_size=12) | TRICKY
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=25,
)
JOINS = st.lists(
    st.builds(
        ClusterJoin,
        cluster=NAMES,
        token=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
        server=st.none() | st.just("https://10.0.0.5:6443"),
        init=st.booleans(),
    ),
    max_size=2,
)


def written_again(
    content: dict[str, Any], digest: str, revision: str, joins: list[ClusterJoin]
) -> bytes:
    document: dict[str, Any] = {**content, "revision": revision, "digest": digest}
    if joins:
        document["join"] = [j.model_dump(mode="json") for j in joins]
    return canonical_json(document)


@settings(max_examples=300, deadline=None)
@given(appliance=NAMES, site=NAMES, clusters=st.lists(JSON, max_size=3), joins=JOINS)
def test_placed_members_give_the_bytes_of_writing_it_all_again(
    appliance: str, site: str, clusters: list[Any], joins: list[ClusterJoin]
) -> None:
    content = {"appliance": appliance, "clusters": clusters, "site": site}
    text = canonical_json(content).decode()
    digest, revision = "sha256:" + "ab" * 32, "c" * 40
    with patch("reconciler.delivery.documents.parse", side_effect=AssertionError("read")):
        body = served_body(text, digest=digest, revision=revision, joins=joins)
        # the bytes a release keeps, served in parts as they are
        parts = served_parts(text.encode(), digest=digest, revision=revision, joins=joins)
    assert body == written_again(content, digest, revision, joins)
    assert json.loads(body)["site"] == site
    assert b"".join(parts) == body


@settings(max_examples=100, deadline=None)
@given(content=st.dictionaries(TEXT, JSON, max_size=4), joins=JOINS)
def test_a_stored_text_of_another_shape_is_read_and_written(
    content: dict[str, Any], joins: list[ClusterJoin]
) -> None:
    text = canonical_json(content).decode()
    body = served_body(text, digest="sha256:00", revision="r", joins=joins)
    assert body == written_again(content, "sha256:00", "r", joins)


@settings(max_examples=200, deadline=None)
@given(
    members=st.lists(st.lists(NAMES, max_size=4), max_size=3),
    noise=st.lists(JSON, max_size=2),
)
def test_a_state_with_a_cluster_over_several_appliances_is_read_for_its_joins(
    members: list[list[str]], noise: list[Any]
) -> None:
    clusters = [{"appliances": m, "name": f"c{i}", "values": noise} for i, m in enumerate(members)]
    text = canonical_json({"appliance": "a", "clusters": clusters, "site": "s"}).decode()
    if any(len(m) >= 2 for m in members):
        assert may_join(text)  # never missed: its joins would be lost
    elif "appliances" not in json.dumps(noise):
        assert not may_join(text)  # and a state on one appliance is not read for nothing


def test_documents_made_many_at_once_are_those_made_one_by_one_in_order(tmp_path: Path) -> None:
    """Made on several threads, a slice at a time (signing lets go of the interpreter):
    each body, signature and tag is the one made alone, in the order asked for."""
    key = Ed25519PrivateKey.generate()
    signers: set[str] = set()

    def signer(body: bytes) -> str:
        signers.add(threading.current_thread().name)
        return sign(body, key)

    documents = DesiredDocuments(store=Store(f"sqlite:///{tmp_path / 's.db'}"), signer=signer)
    wanted = []
    for n in range(5 * MAKER_SLICE + 3):
        content = {"appliance": f"store-{n:03d}-edge", "clusters": [], "site": f"store-{n:03d}"}
        wanted.append((canonical_json(content).decode(), f"sha256:{n:064x}", "a" * 40, None))

    made = documents._make_many(wanted)  # noqa: SLF001 - against the one-by-one making
    assert len(signers) > 1 and all(name.startswith("documents-made") for name in signers)
    assert made == [documents._make(*w) for w in wanted]  # noqa: SLF001
    for (parts, signature, _), (_, digest, _, _) in zip(made, wanted, strict=True):
        body = b"".join(parts)
        assert json.loads(body)["digest"] == digest
        assert signature is not None
        assert verify(body, signature, [key.public_key()]) == key_id(key.public_key())


def test_a_wave_reads_what_is_not_in_memory_while_the_rest_is_made(tmp_path: Path) -> None:
    """Taking a wave, the states it must read (not in memory, or with joins: their contents
    parsed) are read while the makers' threads make the others, not after them."""
    key = Ed25519PrivateKey.generate()
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    notifier = Notifier()
    documents = DesiredDocuments(store=store, notifier=notifier, signer=lambda b: sign(b, key))
    revision = "b" * 40
    offered: dict[str, str] = {}  # the release's contents, in memory
    stored: dict[str, str] = {}  # only in the store
    changes, assignments = [], []
    for n in range(3 * MAKER_SLICE + 1):
        appliance, site = f"store-{n:03d}-edge", f"store-{n:03d}"
        digest = f"sha256:{n:064x}"
        text = canonical_json({"appliance": appliance, "clusters": [], "site": site}).decode()
        (offered if n else stored)[digest] = text
        changes.append(ChangeRecord("served", appliance, at=1.0, digest=digest, revision=revision))
        assignments.append(Assignment(appliance, site, True, digest, revision, 1.0))
    with store.write() as tx:
        tx.documents.put({**offered, **stored}, at=1.0)
        tx.assignments.put_many(assignments)
    reading = threading.Event()
    waited_out: list[str] = []  # makers that waited for the read in vain
    make, read_and_make = DesiredDocuments._make, DesiredDocuments._read_and_make  # noqa: SLF001

    def made(self: DesiredDocuments, *wanted: Any) -> Any:
        maker = threading.current_thread().name
        if maker.startswith("documents-made") and not waited_out and not reading.wait(5):
            waited_out.append(maker)
        return make(self, *wanted)

    def read(self: DesiredDocuments, *asked: Any) -> Any:
        reading.set()
        return read_and_make(self, *asked)

    with (
        patch.object(DesiredDocuments, "_make", made),
        patch.object(DesiredDocuments, "_read_and_make", read),
        notifier.offering(revision, {d: text.encode() for d, text in offered.items()}),
    ):
        documents.take(changes)
    assert not waited_out
    for change in changes:
        fresh, served = documents.remembered(change.appliance)
        assert fresh and served is not None
        assert (served.digest, served.revision) == (change.digest, revision)
        assert served.signature is not None
        assert verify(b"".join(served.body), served.signature, [key.public_key()])


def test_documents_the_render_signed_are_served_without_signing_them_again(
    tmp_path: Path,
) -> None:
    """The signatures the render made, offered with the release's contents, are served as
    made: a wave signs nothing. At another revision the same contents are signed anew (a
    signature covers the revision served)."""
    key = Ed25519PrivateKey.generate()
    signed: list[bytes] = []

    def signer(body: bytes) -> str:
        signed.append(body)
        return sign(body, key)

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    notifier = Notifier()
    documents = DesiredDocuments(store=store, notifier=notifier, signer=signer)
    first, second = "d" * 40, "e" * 40
    contents: dict[str, str] = {}
    assignments = []
    for n in range(3 * MAKER_SLICE):
        appliance, site = f"store-{n:03d}-edge", f"store-{n:03d}"
        text = canonical_json({"appliance": appliance, "clusters": [], "site": site}).decode()
        digest = f"sha256:{n:064x}"
        contents[digest] = text
        assignments.append(Assignment(appliance, site, True, digest, first, 1.0))
    with store.write() as tx:
        tx.documents.put(contents, at=1.0)
        tx.assignments.put_many(assignments)
    presign = presigner(lambda body: sign(body, key))
    signatures = {d: s for d, text in contents.items() if (s := presign(text, d, first))}
    encoded = {d: text.encode() for d, text in contents.items()}  # as a release offers them
    assert len(signatures) == len(contents)

    for revision, offered in ((first, signatures), (second, {})):
        changes = [
            ChangeRecord("served", a.appliance, at=1.0, digest=a.served_digest, revision=revision)
            for a in assignments
        ]
        with notifier.offering(revision, encoded, offered):
            documents.take(changes)
        assert len(signed) == (0 if offered else len(changes))
        for change in changes:
            fresh, served = documents.remembered(change.appliance)
            assert fresh and served is not None and served.revision == revision
            body = b"".join(served.body)
            assert json.loads(body)["revision"] == revision
            assert verify(body, served.signature, [key.public_key()]) == key_id(key.public_key())


def test_documents_made_ahead_leave_those_the_render_signed_for_last(tmp_path: Path) -> None:
    """Ahead of a wave, the documents that cost the most at the hand-over are made first:
    those with no joins the render did not sign, then those with joins; the ones the render
    signed last (made when served, they cost a few microseconds)."""
    key = Ed25519PrivateKey.generate()
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    notifier = Notifier()
    documents = DesiredDocuments(store=store, notifier=notifier, signer=lambda b: sign(b, key))
    revision = "f" * 40
    contents: dict[str, str] = {}
    targets = []
    for n, kind in enumerate(["signed", "spanning", "plain"] * 2):
        appliance = f"{kind}-{n}-edge"
        members = [appliance, "elsewhere"] if kind == "spanning" else [appliance]
        cluster = {"appliances": members, "name": "c", "nodes": []}
        text = canonical_json({"appliance": appliance, "clusters": [cluster], "site": "s"})
        digest = f"sha256:{n:064x}"
        contents[digest] = text.decode()
        shared = ("c",) if kind == "spanning" else ()
        targets.append(
            RolloutTarget(revision, appliance, "s", digest, True, False, ("c",), shared, True)
        )
    presign = presigner(lambda body: sign(body, key))
    signatures = {
        d: s
        for d, text in contents.items()
        if "signed" in text and (s := presign(text, d, revision))
    }
    with store.write(exclusive=True) as tx:
        tx.documents.put(contents, at=1.0)
        tx.revisions.add(RevisionRecord(revision, "good", (), 1.0))
        tx.rollouts.add(
            RolloutRecord(
                revision, 1, "running", 0, ({"name": "all", "labels": {}},), "0", 0.0, (), 1.0, 1.0
            )
        )
        tx.rollouts.add_targets(targets)
    asked: list[str] = []
    make_many = DesiredDocuments._make_many  # noqa: SLF001

    def made(self: DesiredDocuments, wanted: Any) -> Any:
        asked.extend(json.loads(text)["appliance"].split("-")[0] for text, *_ in wanted)
        return make_many(self, wanted)

    encoded = {d: text.encode() for d, text in contents.items()}  # as a release offers them
    with (
        notifier.offering(revision, encoded, signatures),
        patch.object(DesiredDocuments, "_make_many", made),
    ):
        documents._take_presigned([revision])  # noqa: SLF001 - what take() does first
        documents._making_ahead(revision, encoded)  # noqa: SLF001 - on this thread
    assert asked == ["plain", "plain", "spanning", "spanning", "signed", "signed"]
    assert documents.made_ahead() == len(contents)
