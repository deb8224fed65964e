"""Trees written back as YAML documents: the plaintext a node's manifests folder gets, every
string quoted so no YAML reader (Kubernetes reads YAML 1.1) takes ``yes`` or ``0412`` for
anything else, and a sealed document laid out as SOPS writes it."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

from agent.secrets.documents import Branch, Timestamp, Value, resolve
from agent.secrets.errors import MalformedSecret

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
# what a literal block may hold as it is: YAML's printable characters, line feeds the only breaks
_PRINTABLE_BLOCK = re.compile(
    "^[\t\n\x20-\x7e\u00a0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*$"
)


def plaintext_yaml(documents: Sequence[Branch]) -> str:
    """Decrypted documents as the YAML a node applies."""
    return _dump([_prepare(d, quote_all=True) for d in documents])


def sealed_yaml(documents: Sequence[Branch]) -> str:
    """Sealed documents (their ``sops`` block included); a string is quoted only where a
    plain scalar would read back as another value, so the MAC holds."""
    return _dump([_prepare(d, quote_all=False) for d in documents])


def _dump(documents: list[Any]) -> str:
    yaml = YAML()
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(float, _float)
    out = io.StringIO()
    yaml.dump_all(documents, out)
    return out.getvalue()


def _float(representer: Any, value: float) -> Any:
    """A float every YAML reads as that float: a dot in the mantissa (YAML 1.1 wants one)."""
    if math.isnan(value):
        text = ".nan"
    elif math.isinf(value):
        text = ".inf" if value > 0 else "-.inf"
    else:
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        text = f"{mantissa}e{exponent}" if exponent else mantissa
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


def _prepare(value: Value, *, quote_all: bool) -> Any:
    if isinstance(value, dict):
        return {
            _key(key, quote_all): _prepare(inner, quote_all=quote_all)
            for key, inner in value.items()
        }
    if isinstance(value, list):
        return [_prepare(inner, quote_all=quote_all) for inner in value]
    if isinstance(value, str):
        return _string(value, quote_all)
    return value


def _string(text: str, quote_all: bool) -> Any:
    if "\n" in text and _PRINTABLE_BLOCK.match(text) and not text.startswith((" ", "\n")):
        return LiteralScalarString(text)
    if quote_all or isinstance(text, Timestamp) or _reads_back_otherwise(text):
        return DoubleQuotedScalarString(text)
    return text


def _key(key: str, quote_all: bool) -> Any:
    if quote_all:
        if _PLAIN_KEY.match(key) and key.lower() not in _YAML11_WORDS:
            return key
        return DoubleQuotedScalarString(key)
    return DoubleQuotedScalarString(key) if _reads_back_otherwise(key) else key


def _reads_back_otherwise(text: str) -> bool:
    try:
        found = resolve(text)
    except MalformedSecret:
        return True
    return type(found) is not str or found != text
