"""The canonical JSON of a desired state's content, made fast.

:func:`agent.contract.canonical_json` is the definition (sorted keys, no whitespace, UTF-8),
and what the agent checks a digest with. For what a contract model dumps in JSON mode (text,
integers, booleans, null, lists, and mappings with text keys: the contract declares no
floating-point field), orjson writes the same bytes several times faster; what orjson refuses
(an integer past 64 bits, a lone surrogate, nesting deeper than it goes) is written by the
definition, which fails or succeeds as it always did.
"""

from __future__ import annotations

from typing import Any

import orjson

from agent.contract import canonical_json


def state_json(content: Any) -> bytes:
    """``canonical_json(content)`` for a contract model's JSON-mode dump."""
    try:
        return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError is one
        return canonical_json(content)
