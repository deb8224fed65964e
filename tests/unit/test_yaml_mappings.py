"""Checking rendered text: YAML whose every document is a mapping. The fast check (syntax
in C, roots read per document) must judge every text as reading it event by event does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.loading import YamlError
from reconciler.loading.yamldocs import check_mappings, check_mappings_by_events

# lines rendered manifests are made of, and the ones that break them: markers, block and
# flow collections, block scalars holding marker-like text, quotes, anchors, directives
LINES = [
    "---", "--- ", "---\t", "--- a: 1", "--- |", "--- [1, 2]", "--- {a: 1}", "--- !!map",
    "--- &x", "--- *x", "--- plain", "...", "... ", "----", "---x", " ---", "  --- indented",
    "a: 1", "b:", "  c: 2", "  - x", "- y", "- a: 1", "key: |", "key: >-", "  text ---",
    "  ---", "  ...", "plain text", "'quoted", "\"unclosed", "x: 'a", "  b'", "[1, 2",
    "]", "{a: 1}", "{a", "}", "&a k: v", "*a", "? complex", ": value", "# comment",
    "", "  ", "%YAML 1.2", "%TAG ! tag:x,2000:", "a: b: c", "\tb: 1", "a: 1\r", "x: \x85y",
    "k: v # ---", "s: '---'", "t: \"--- \"", "- ---", "? ---", "l: [---]", "q: \"a",
    "  ---\"",
]  # fmt: skip

texts = st.lists(st.sampled_from(LINES), max_size=12).map(
    lambda lines: "\n".join(lines)
) | st.lists(st.sampled_from(LINES), max_size=12).map(lambda lines: "\n".join(lines) + "\n")


def verdict(check: object, text: str) -> tuple[int, str] | None:
    assert callable(check)
    try:
        check(text)
    except YamlError as e:
        return e.line, e.message
    return None


@settings(max_examples=3000, deadline=None)
@given(texts)
def test_the_fast_check_judges_every_text_as_the_events_do(text: str) -> None:
    assert verdict(check_mappings, text) == verdict(check_mappings_by_events, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\n---\nb: 2\n", None),
        ("a: 1\n---\n- x\n", (3, "each YAML document must be a mapping")),
        ("---\na: |\n  ---\n  text\n--- plain\n", (5, "each YAML document must be a mapping")),
        ("a: |\n  --- not a marker\nb: 1\n", None),
        ("# only a comment\n", None),
        ("---\n---\na: 1\n", None),  # an empty document is allowed
        (
            "a: [1,\n--- 2]\n",  # a marker inside a flow collection: not YAML
            (2, "YAML syntax error: while parsing a flow node: did not find expected node content"),
        ),
    ],
)
def test_documents_and_their_roots(text: str, expected: tuple[int, str] | None) -> None:
    assert verdict(check_mappings, text) == expected
