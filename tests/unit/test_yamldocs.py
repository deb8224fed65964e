"""Parsing one YAML file: data, field lines on demand, and hostile input bounded."""

from __future__ import annotations

import pytest

from reconciler.loading import YamlError, parse
from reconciler.loading.yamldocs import MAX_DEPTH, MAX_FILE_BYTES

DOC = b"""\
# a comment first
apiVersion: edgefleet.dev/v1
kind: Cluster
spec:
  nodePools:
    - name: cp
      size: 3
    - name: workers
      appliances: [a, b]
"""


def test_parse_gives_plain_data_and_field_lines() -> None:
    data, lines = parse(DOC)
    assert data["spec"]["nodePools"][1]["appliances"] == ["a", "b"]
    assert lines.line(()) == 2
    assert lines.line(("kind",)) == 3
    assert lines.line(("spec", "nodePools", 0, "size")) == 7
    assert lines.line(("spec", "nodePools", 1)) == 8
    assert lines.line(("spec", "nodePools", 1, "appliances", 1)) == 9


def test_unknown_location_falls_back_to_the_deepest_known_part() -> None:
    _, lines = parse(DOC)
    assert lines.line(("spec", "nodePools", 0, "missing", "deeper")) == 6


def test_duplicate_key_names_the_second_occurrence() -> None:
    with pytest.raises(YamlError) as e:
        parse(b"a: 1\nb:\n  c: 1\n  c: 2\n")
    assert (e.value.line, e.value.message) == (4, "duplicate key 'c'")


def test_syntax_error_has_its_line() -> None:
    with pytest.raises(YamlError) as e:
        parse(b"a: 1\nb: [1, 2\nc: 3\n")
    assert e.value.line == 2  # where the unclosed bracket opened
    assert e.value.message.startswith("YAML syntax error")


def test_alias_bomb_is_refused_without_expanding_it() -> None:
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        refs = ", ".join(f"*a{i - 1}" for _ in range(9))
        bomb.append(f"a{i}: &a{i} [{refs}]")
    with pytest.raises(YamlError) as e:
        parse("\n".join(bomb).encode())
    assert "alias bomb" in e.value.message


def test_deep_flow_nesting_is_refused_before_parsing() -> None:
    with pytest.raises(YamlError) as e:
        parse(b"a: " + b"[" * 1_000_000 + b"]" * 1_000_000)
    assert e.value.message == f"nesting deeper than {MAX_DEPTH} levels"


def test_deep_block_nesting_is_refused() -> None:
    text = "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200 + "v\n"
    with pytest.raises(YamlError) as e:
        parse(text.encode())
    assert e.value.message == f"nesting deeper than {MAX_DEPTH} levels"


def test_oversized_file_is_refused_before_parsing() -> None:
    with pytest.raises(YamlError) as e:
        parse(b"a: " + b"x" * MAX_FILE_BYTES)
    assert "larger than the" in e.value.message


def test_more_than_one_document_is_refused() -> None:
    with pytest.raises(YamlError) as e:
        parse(b"a: 1\n---\nb: 2\n")
    assert e.value.message == "expected exactly one YAML document, found 2 documents"
