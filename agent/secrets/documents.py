"""A SOPS document read as SOPS reads it: its YAML documents as trees (mappings in file order,
scalars typed as Go's yaml.v3 types them, since a value's type decides the bytes of the MAC),
the ``sops`` metadata of the first document, and the walk over the values with their paths.
JSON reads as the YAML it is.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

from agent.secrets.errors import MalformedSecret


class Timestamp(str):
    """An unquoted YAML timestamp, kept as Go's ``time.Time.MarshalText`` writes it."""


Scalar: TypeAlias = str | int | float | bool | None
Value: TypeAlias = "dict[str, Value] | list[Value] | Scalar"
Branch: TypeAlias = "dict[str, Value]"
Path: TypeAlias = tuple[str, ...]

METADATA_KEY = "sops"
RuleKind = Literal["unencrypted_suffix", "encrypted_suffix", "unencrypted_regex", "encrypted_regex"]
RULE_KINDS: tuple[RuleKind, ...] = (
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
)
DEFAULT_RULE_SUFFIX = "_unencrypted"
_UNSUPPORTED = {
    "encrypted_comment_regex": "encrypted_comment_regex",
    "unencrypted_comment_regex": "unencrypted_comment_regex",
    "key_groups": "key groups (Shamir's secret sharing)",
}


# -- YAML as yaml.v3 reads it ----------------------------------------------------------------

_STR, _INT, _FLOAT, _BOOL, _NULL, _TIME = (
    "!!str",
    "!!int",
    "!!float",
    "!!bool",
    "!!null",
    "!!timestamp",
)
_LONG_PREFIX = "tag:yaml.org,2002:"
_SPECIAL: dict[str, tuple[str, Scalar]] = {
    **{w: (_BOOL, True) for w in ("true", "True", "TRUE")},
    **{w: (_BOOL, False) for w in ("false", "False", "FALSE")},
    **{w: (_NULL, None) for w in ("", "~", "null", "Null", "NULL")},
    **{w: (_FLOAT, float("nan")) for w in (".nan", ".NaN", ".NAN")},
    **{w: (_FLOAT, float("inf")) for w in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")},
    **{w: (_FLOAT, float("-inf")) for w in ("-.inf", "-.Inf", "-.INF")},
}
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:([Tt ])(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?)?$"
)
_INT64 = (-(2**63), 2**63 - 1)


def _hint(text: str) -> str:
    first = text[:1]
    if first == "":
        return "N"
    if first in "+-":
        return "S"
    if first.isdigit() and first.isascii():
        return "D"
    if first in "yYnNtTfFoO~":
        return "M"
    return "." if first == "." else ""


def go_int(text: str, base: int = 0, *, unsigned: bool = False) -> int | None:
    """Go's ``strconv.ParseInt(text, base, 64)`` (``ParseUint`` with ``unsigned``); None
    where it fails."""
    sign, digits = 1, text
    if digits[:1] in "+-" and digits:
        sign, digits = (-1 if digits[0] == "-" else 1), digits[1:]
    if base == 0:
        base = 10
        lowered = digits[:2].lower()
        if lowered in ("0x", "0o", "0b"):
            base, digits = {"0x": 16, "0o": 8, "0b": 2}[lowered], digits[2:]
        elif digits.startswith("0") and len(digits) > 1:
            base, digits = 8, digits[1:]
    allowed = "0123456789abcdef"[:base]
    if not digits or any(c not in allowed for c in digits.lower()):
        return None
    value = sign * int(digits, base)
    if unsigned:
        return value if sign > 0 and text[:1] != "+" and value < 2**64 else None
    return value if _INT64[0] <= value <= _INT64[1] else None


def _go_float(text: str) -> float | None:
    if "_" in text or not text.strip() or text.strip() != text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _timestamp(text: str) -> Timestamp | None:
    """yaml.v3's timestamp forms, as Go writes the time back (RFC 3339, nanoseconds)."""
    found = _TIMESTAMP.match(text)
    if found is None:
        return None
    year, month, day, sep, hour, minute, second, fraction, zone = found.groups()
    if sep is not None and (sep == " ") == (zone is not None):
        return None  # "T" needs a zone, " " takes none
    try:
        when = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        return None
    digits = (fraction or "")[:9].rstrip("0")
    offset = "Z" if zone in (None, "Z", "+00:00", "-00:00") else zone
    return Timestamp(when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{digits}" if digits else "") + offset)


def resolve(text: str, *, tag: str | None = None, quoted: bool = False) -> Scalar:
    """A scalar as yaml.v3 decodes it into ``interface{}``."""
    short = None if tag is None else tag.replace(_LONG_PREFIX, "!!")
    if short == "!" or (quoted and short in (None, _STR)):
        return text
    if short not in (None, _STR, _INT, _FLOAT, _BOOL, _NULL, _TIME):
        if short == "!!binary":
            raise MalformedSecret("!!binary values are not supported")
        return text  # a tag yaml.v3 does not resolve keeps the text
    kind, value = _plain(text, short)
    if short is None or short == _STR or kind == short:
        return text if short == _STR else value
    if short == _FLOAT and kind == _INT:
        return float(value)  # type: ignore[arg-type]
    raise MalformedSecret(f"a value tagged {short} does not read as one")  # never echo a value


def _plain(text: str, short: str | None) -> tuple[str, Scalar]:
    hint = _hint(text)
    if not hint or short == _STR:
        return _STR, text
    if text in _SPECIAL:
        return _SPECIAL[text]
    if hint == ".":
        value = _go_float(text)
        if value is not None:
            return _FLOAT, value
    elif hint in "DS":
        if short in (None, _TIME):
            when = _timestamp(text)
            if when is not None:
                return _TIME, when
        plain = text.replace("_", "")
        number = go_int(plain)
        if number is not None:
            return _INT, number
        if not plain.startswith("-") and go_int(plain, unsigned=True) is not None:
            # yaml.v3 reads it as a uint64, which SOPS cannot walk
            raise MalformedSecret("an integer above 9223372036854775807 is not supported")
        if _YAML_FLOAT.match(plain):
            value = _go_float(plain)
            if value is not None:
                return _FLOAT, value
        for prefix, base in (("0b", 2), ("-0b", 2), ("0o", 8), ("-0o", 8)):
            if plain.startswith(prefix):
                sign = "-" if prefix.startswith("-") else ""
                number = go_int(sign + plain[len(prefix) :], base)
                if number is not None:
                    return _INT, number
                break
    return _STR, text


class _Builder:
    """Trees from ruamel.yaml's parser events: keys must be strings and unique, aliases
    become copies of what they name."""

    def __init__(self, events: Iterator[Event]) -> None:
        self.events = events
        self.anchors: dict[str, Value] = {}

    def documents(self) -> list[Branch]:
        out: list[Branch] = []
        for event in self.events:
            if isinstance(event, StreamStartEvent | DocumentEndEvent):
                continue
            if isinstance(event, StreamEndEvent):
                break
            if isinstance(event, DocumentStartEvent):
                root = self.node(next(self.events))
                if root is None:
                    out.append({})
                elif isinstance(root, dict):
                    out.append(root)
                else:
                    raise MalformedSecret("a YAML document must be a mapping")
        return out

    def node(self, event: Event) -> Value:
        if isinstance(event, AliasEvent):
            if event.anchor not in self.anchors:
                raise MalformedSecret(f"unknown anchor '{event.anchor}'")
            return copy.deepcopy(self.anchors[event.anchor])
        value: Value
        if isinstance(event, ScalarEvent):
            style = event.style or ""
            value = resolve(event.value, tag=event.tag, quoted=style in ("'", '"', "|", ">"))
        elif isinstance(event, SequenceStartEvent):
            items: list[Value] = []
            for inner in self.events:
                if isinstance(inner, SequenceEndEvent):
                    break
                items.append(self.node(inner))
            value = items
        elif isinstance(event, MappingStartEvent):
            mapping: Branch = {}
            for inner in self.events:
                if isinstance(inner, MappingEndEvent):
                    break
                key = self.node(inner)
                if not isinstance(key, str):
                    raise MalformedSecret(f"a key must be a string (got {key!r})")
                if key in mapping:
                    raise MalformedSecret(f"key '{key}' appears twice in one mapping")
                mapping[key] = self.node(next(self.events))
            value = mapping
        else:
            raise MalformedSecret(f"unexpected YAML ({type(event).__name__})")
        anchor = getattr(event, "anchor", None)
        if anchor:
            self.anchors[anchor] = value
        return value


def load_yaml(text: str) -> list[Branch]:
    """The documents of ``text`` as trees; raises MalformedSecret (never quoting a value)."""
    try:
        return _Builder(iter(YAML(typ="safe").parse(text))).documents()
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or "does not parse"
        raise MalformedSecret(f"not valid YAML{where}: {problem}") from None


# -- the metadata and the walk ----------------------------------------------------------------


@dataclass(frozen=True)
class AgeStanza:
    recipient: str
    enc: str


@dataclass(frozen=True)
class Rule:
    """Which values are encrypted: SOPS's one crypt rule per file (default: every value but
    those under a key ending in ``_unencrypted``)."""

    kind: RuleKind = "unencrypted_suffix"
    pattern: str = DEFAULT_RULE_SUFFIX

    def encrypts(self, path: Path) -> bool:
        if self.kind == "unencrypted_suffix":
            return not any(key.endswith(self.pattern) for key in path)
        if self.kind == "encrypted_suffix":
            return any(key.endswith(self.pattern) for key in path)
        matched = any(re.search(self.pattern, key) for key in path)
        return not matched if self.kind == "unencrypted_regex" else matched


@dataclass(frozen=True)
class Metadata:
    age: tuple[AgeStanza, ...]
    lastmodified: str  # as SOPS formats it again (RFC 3339, seconds): the MAC's additional data
    mac: str
    version: str
    rule: Rule
    mac_only_encrypted: bool = False


@dataclass(frozen=True)
class Document:
    branches: tuple[Branch, ...]
    metadata: Metadata

    def leaves(self) -> Iterator[tuple[Path, Scalar]]:
        return leaves(self.branches)

    def encrypted_keys(self) -> tuple[str, ...]:
        """The dotted paths of the values the rule encrypts (``stringData.token``), once each."""
        seen: dict[str, None] = {}
        for path, value in self.leaves():
            if value is not None and self.metadata.rule.encrypts(path):
                seen.setdefault(".".join(path), None)
        return tuple(seen)


def leaves(branches: tuple[Branch, ...] | list[Branch]) -> Iterator[tuple[Path, Scalar]]:
    """Every scalar in SOPS's order with its path: the keys above it (a list adds none)."""
    for branch in branches:
        yield from _walk(branch, ())


def _walk(value: Value, path: Path) -> Iterator[tuple[Path, Scalar]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _walk(inner, (*path, key))
    elif isinstance(value, list):
        for inner in value:
            yield from _walk(inner, path)
    else:
        yield path, value


def map_leaves(value: Value, path: Path, change: Any) -> Value:
    """``value`` with every scalar replaced by ``change(path, scalar)``, in walk order."""
    if isinstance(value, dict):
        return {key: map_leaves(inner, (*path, key), change) for key, inner in value.items()}
    if isinstance(value, list):
        return [map_leaves(inner, path, change) for inner in value]
    replaced: Value = change(path, value)
    return replaced


def is_sops(text: str) -> bool:
    """Whether ``text`` is meant as a SOPS document: YAML whose first document has a top-level
    ``sops`` mapping (well formed or not: :func:`read_document` says)."""
    try:
        documents = load_yaml(text)
    except MalformedSecret:
        return bool(re.search(r"^sops:\s*$", text, re.MULTILINE))
    return bool(documents) and isinstance(documents[0].get(METADATA_KEY), dict)


def read_document(text: str) -> Document:
    """``text`` as a SOPS document with age recipients; raises MalformedSecret with the
    reason (the first problem found)."""
    documents = load_yaml(text)
    if not documents or not isinstance(documents[0].get(METADATA_KEY), dict):
        raise MalformedSecret("not a SOPS document (no top-level 'sops' mapping)")
    raw = documents[0][METADATA_KEY]
    assert isinstance(raw, dict)
    branches = tuple(
        {key: value for key, value in branch.items() if key != METADATA_KEY} for branch in documents
    )
    return Document(branches, _metadata(raw))


def _metadata(raw: dict[str, Value]) -> Metadata:
    for key, what in _UNSUPPORTED.items():
        if raw.get(key) not in (None, [], ""):
            raise MalformedSecret(f"sops.{key}: {what} is not supported")
    version = raw.get("version")
    if not isinstance(version, str) or not re.match(r"^3\.\d+", version):
        raise MalformedSecret(f"sops.version must be 3.x (got {version!r})")
    lastmodified = _text(raw, "lastmodified")
    mac = _text(raw, "mac")
    rules = [kind for kind in RULE_KINDS if raw.get(kind) not in (None, "")]
    if len(rules) > 1:
        raise MalformedSecret(f"sops: more than one encryption rule ({', '.join(rules)})")
    rule = Rule()
    if rules:
        pattern = raw[rules[0]]
        if not isinstance(pattern, str):
            raise MalformedSecret(f"sops.{rules[0]} must be a string")
        if rules[0].endswith("regex"):
            try:
                re.compile(pattern)
            except re.error:
                raise MalformedSecret(f"sops.{rules[0]} is not a regular expression") from None
        rule = Rule(rules[0], pattern)
    only = raw.get("mac_only_encrypted", False)
    if not isinstance(only, bool):
        raise MalformedSecret("sops.mac_only_encrypted must be true or false")
    return Metadata(_age(raw.get("age")), _rfc3339(lastmodified), mac, version, rule, only)


def _text(raw: dict[str, Value], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedSecret(f"sops.{key} is missing")
    return value


def _age(raw: Value) -> tuple[AgeStanza, ...]:
    if not isinstance(raw, list) or not raw:
        raise MalformedSecret("sops.age lists no age recipient")
    stanzas = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise MalformedSecret(f"sops.age[{index}] must be a mapping")
        recipient, enc = item.get("recipient"), item.get("enc")
        if not isinstance(recipient, str) or not recipient.startswith("age1"):
            raise MalformedSecret(f"sops.age[{index}].recipient is not an age recipient")
        if not isinstance(enc, str) or "-----BEGIN AGE ENCRYPTED FILE-----" not in enc:
            raise MalformedSecret(f"sops.age[{index}].enc is not an armored age file")
        stanzas.append(AgeStanza(recipient, enc))
    return tuple(stanzas)


def _rfc3339(text: str) -> str:
    """``lastmodified`` as Go formats it again after parsing it (``time.RFC3339``)."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise MalformedSecret(f"sops.lastmodified is not an RFC 3339 time ({text!r})") from None
    if when.tzinfo is None:
        raise MalformedSecret(f"sops.lastmodified has no time zone ({text!r})")
    offset = when.utcoffset()
    assert offset is not None
    base = when.strftime("%Y-%m-%dT%H:%M:%S")
    if not offset:
        return base + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{base}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
