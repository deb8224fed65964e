"""The reconciler writes a state's canonical JSON with orjson: the same bytes as the
definition the agent checks digests with, for any value a contract model can dump
(Hypothesis), and the same failure where the definition fails."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.contract import DesiredState, canonical_json
from reconciler.canonical import state_json

# any text (control characters, line separators, astral planes, lone surrogates) and
# integers past 64 bits, which orjson refuses
TEXT = st.text(max_size=16) | st.sampled_from(["\x00\x1f\x7f", "\u2028\u2029", "é😀", "\ud800"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)


def outcome(write: Any, value: Any) -> bytes | type[BaseException]:
    try:
        return bytes(write(value))
    except Exception as e:  # compared: the same kind of failure
        return type(e)


@settings(max_examples=500, deadline=None)
@given(value=JSON)
def test_the_bytes_are_those_of_the_definition(value: Any) -> None:
    assert outcome(state_json, value) == outcome(canonical_json, value)


def test_deep_nesting_past_what_orjson_writes_is_written_by_the_definition() -> None:
    value: Any = "leaf"
    for depth in range(300):
        value = [value] if depth % 2 else {"k": value}
    assert state_json(value) == canonical_json(value)


def test_the_contract_declares_no_floating_point_field() -> None:
    """orjson writes floats otherwise than Python (1e+16 against 1e16): the fast writer is
    the same only while a state holds none."""
    schema = str(DesiredState.model_json_schema())  # the fields a dump is made of
    assert "'number'" not in schema and "'integer'" in schema
