"""The served document is the stored content with its revision, digest and joins placed in
it: the same bytes as reading the content and writing it all again as canonical JSON, for
any content (Hypothesis), including strings that look like the members placed."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.contract import ClusterJoin, canonical_json
from reconciler.delivery.documents import may_join, served_body

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
    assert body == written_again(content, digest, revision, joins)
    assert json.loads(body)["site"] == site


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
