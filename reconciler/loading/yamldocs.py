"""Parse one YAML file into plain data, with the line of every field available on demand.

Parsing reads ruamel.yaml's C parser events and builds plain data from them directly (YAML
1.2 core schema; dates stay strings), several times faster than the generic constructor. Line
numbers are needed only when something is wrong, so the round-trip parser (which keeps
positions) runs lazily, the first time a line is asked for. Hostile input is bounded as it is
read: the file size, the nesting depth and the number of values with aliases expanded (an
alias bomb) all have limits, and a duplicate key is an error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML, events
from ruamel.yaml.clib._ruamel_yaml import CParser
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 250_000

Loc = tuple[str | int, ...]


class YamlError(Exception):
    """A file that is not a readable YAML document; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class LineIndex:
    """Lines of a document's fields, computed from the text the first time one is asked for."""

    text: str
    _root: Any = field(default=None, init=False, repr=False)
    _parsed: bool = field(default=False, init=False, repr=False)

    def line(self, loc: Loc) -> int:
        """The 1-based line of the deepest part of ``loc`` present in the document."""
        if not self._parsed:
            self._parsed = True
            try:
                self._root = YAML(typ="rt").load(self.text)
            except (YAMLError, RecursionError, ValueError):
                self._root = None
        node = self._root
        line = _first_content_line(self.text)
        for key in loc:
            if isinstance(node, CommentedMap) and key in node:
                line = node.lc.key(key)[0] + 1
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
                line = node.lc.item(key)[0] + 1
                node = node[key]
            else:
                break
        return line


def _first_content_line(text: str) -> int:
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped and not stripped.startswith(("#", "---", "%")):
            return number
    return 1


_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$|^0o[0-7]+$|^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}
_INT_CHARS = 64  # longer than any 64-bit integer can be written, underscores and all
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_TAG = "tag:yaml.org,2002:"


def _plain(value: str, line: int) -> Any:
    """A plain scalar under the YAML 1.2 core schema (dates stay strings)."""
    if value in _NULLS:
        return None
    boolean = _BOOLS.get(value)
    if boolean is not None:
        return boolean
    head = value[:1]
    if head.isdigit() or head in "-+.":
        if _INT.match(value):
            return _integer(value, line)
        if _FLOAT.match(value):
            return float(value.replace("_", ""))
        special = _SPECIAL_FLOATS.get(value.lower())
        if special is not None:
            return special
    return value


def _integer(text: str, line: int, *, base: int | None = None) -> int:
    """An integer literal, refused beyond 64 bits (what Kubernetes, JSON readers and the
    store keep) before a long one costs anything to parse."""
    if len(text) <= _INT_CHARS:
        if base is not None:
            value = int(text, base)
        else:
            value = int(text.replace("_", ""), 0) if text[:2] in ("0o", "0x") else int(text)
        if -(2**63) <= value < 2**63:
            return value
    raise YamlError(line, "integer too large (beyond 64 bits; quote it to keep it as text)")


def _tagged(tag: str, value: str, line: int) -> Any:
    kind = tag.removeprefix(_TAG)
    try:
        if kind == "str":
            return value
        if kind == "int":
            return _integer(value, line, base=0)
        if kind == "float":
            return float(value)
        if kind == "bool":
            return _BOOLS[value]
        if kind == "null":
            return None
    except (KeyError, ValueError):
        raise YamlError(line, f"'{value}' is not a valid {kind}") from None
    raise YamlError(line, f"unsupported tag {tag}")


class _Frame:
    """A mapping or sequence being built, with the key waiting for its value."""

    __slots__ = ("anchor", "key", "key_line", "size", "value")

    def __init__(self, value: dict[Any, Any] | list[Any], anchor: str | None) -> None:
        self.value = value
        self.anchor = anchor
        self.key: Any = _NO_KEY
        self.key_line = 0
        self.size = 1


_NO_KEY = object()


def _construct(text: str) -> list[Any]:
    """Build plain Python data from the C parser's events, bounding depth and expanded size
    (aliases count as often as they are used) and refusing duplicate keys."""
    parser = CParser(text)
    documents: list[Any] = []
    stack: list[_Frame] = []
    anchors: dict[str, tuple[Any, int]] = {}
    budget = MAX_NODES
    try:
        while True:
            event = parser.get_event()
            kind = type(event)
            line = event.start_mark.line + 1 if event.start_mark is not None else 1
            size = 1
            if kind is events.ScalarEvent:
                tag = event.tag
                if tag is None or tag == "!":
                    value = _plain(event.value, line) if event.implicit[0] else event.value
                else:
                    value = _tagged(tag, event.value, line)
            elif kind is events.MappingStartEvent or kind is events.SequenceStartEvent:
                if len(stack) >= MAX_DEPTH:
                    raise YamlError(line, f"nesting deeper than {MAX_DEPTH} levels")
                container: dict[Any, Any] | list[Any] = (
                    {} if kind is events.MappingStartEvent else []
                )
                stack.append(_Frame(container, event.anchor))
                continue
            elif kind is events.MappingEndEvent or kind is events.SequenceEndEvent:
                frame = stack.pop()
                value, size = frame.value, frame.size
                if frame.anchor:
                    anchors[frame.anchor] = (value, size)
                _add(stack, value, size, line, documents)
                continue
            elif kind is events.AliasEvent:
                if event.anchor not in anchors:
                    raise YamlError(line, f"unknown alias '*{event.anchor}'")
                value, size = anchors[event.anchor]
                budget -= size
                if budget < 0:
                    raise YamlError(
                        line, f"document expands to more than {MAX_NODES} values (an alias bomb?)"
                    )
                _add(stack, value, size, line, documents)
                continue
            elif kind is events.StreamEndEvent:
                break
            else:
                continue
            budget -= 1
            if budget < 0:
                raise YamlError(line, f"document has more than {MAX_NODES} values")
            if event.anchor:
                anchors[event.anchor] = (value, 1)
            _add(stack, value, size, line, documents)
    finally:
        parser.dispose()
    return documents


def _add(stack: list[_Frame], value: Any, size: int, line: int, documents: list[Any]) -> None:
    if not stack:
        documents.append(value)
        return
    top = stack[-1]
    top.size += size
    target = top.value
    if isinstance(target, list):
        target.append(value)
    elif top.key is _NO_KEY:
        if isinstance(value, dict | list):
            raise YamlError(line, "a mapping key must be a plain value")
        top.key, top.key_line = value, line
    else:
        key = top.key
        top.key = _NO_KEY
        if key == "<<" and isinstance(value, dict | list):
            for part in value if isinstance(value, list) else [value]:
                if isinstance(part, dict):
                    for k, v in part.items():
                        target.setdefault(k, v)
            return
        if key in target:
            raise YamlError(top.key_line, f"duplicate key '{key}'")
        target[key] = value


def check_mappings(text: str) -> None:
    """Check that ``text`` is YAML whose documents are all mappings (or empty), without
    building them: rendered output is checked this way before it is served.

    The C parser checks the syntax without handing over a single event; each document's
    root is then read from the first events of the document alone. A line starting with
    ``---`` always starts a document in YAML that parsed (no scalar or flow collection may
    hold one), so the documents are found by their lines. Text that does not parse (to
    report its first problem), or has directives or line breaks other than ``\\n``, is read
    event by event."""
    if _unusual(text) or not _parses(text):
        check_mappings_by_events(text)
        return
    starts = _document_starts(text)
    line = 0
    try:
        for begin, end in zip(starts, [*starts[1:], len(text)], strict=True):
            _check_root(text[begin:end], line)
            line += text.count("\n", begin, end)
    except MarkedYAMLError:  # not expected of text that parsed: its events tell
        check_mappings_by_events(text)


def _parses(text: str) -> bool:
    parser = CParser(text)
    try:
        parser.raw_parse()
    except MarkedYAMLError:
        return False
    finally:
        parser.dispose()
    return True


def _document_starts(text: str) -> list[int]:
    """Where each document of ``text`` starts: at 0, and at each line that starts with a
    ``---`` marker (followed by a blank, a line break or the end)."""
    starts = [0]
    at = text.find("\n---")
    while at != -1:
        begin = at + 1
        if text[begin + 3 : begin + 4] in ("", " ", "\t", "\n"):
            starts.append(begin)
        at = text.find("\n---", begin)
    return starts


def _unusual(text: str) -> bool:
    """Whether ``text`` has a directive or a line break YAML knows besides ``\\n`` (searched
    for each at C speed: a pattern for all of them took 15 times as long)."""
    return (
        text.startswith("%")
        or "\n%" in text
        or "\r" in text
        or "\x85" in text
        or "\u2028" in text
        or "\u2029" in text
    )


def _check_root(document: str, offset: int) -> None:
    """The root of the one document ``document`` holds (if any) must be a mapping; its
    lines count from ``offset``."""
    parser = CParser(document)
    try:
        parser.get_event()  # the stream's start
        if type(parser.get_event()) is not events.DocumentStartEvent:
            return  # no document: comments, blank lines
        event = parser.get_event()
        kind = type(event)
        empty = kind is events.ScalarEvent and event.value == "" and event.implicit[0]
        if not (kind is events.MappingStartEvent or empty):
            raise YamlError(
                offset + event.start_mark.line + 1, "each YAML document must be a mapping"
            )
    finally:
        parser.dispose()


def check_mappings_by_events(text: str) -> None:
    """:func:`check_mappings` event by event, for any text."""
    parser = CParser(text)
    try:
        expect_root = False
        while True:
            event = parser.get_event()
            kind = type(event)
            if expect_root:
                expect_root = False
                empty = kind is events.ScalarEvent and event.value == "" and event.implicit[0]
                if not (kind is events.MappingStartEvent or empty):
                    line = event.start_mark.line + 1
                    raise YamlError(line, "each YAML document must be a mapping")
            elif kind is events.DocumentStartEvent:
                expect_root = True
            elif kind is events.StreamEndEvent:
                return
    except MarkedYAMLError as e:
        raise YamlError(error_line(e), _yaml_reason(e)) from None
    finally:
        parser.dispose()


def load_documents(text: str) -> list[Any]:
    """Every document of ``text`` as plain data; raises :class:`YamlError` with a line."""
    try:
        return _construct(text)
    except MarkedYAMLError as e:
        raise YamlError(error_line(e), _yaml_reason(e)) from None
    except YAMLError as e:
        raise YamlError(1, f"not valid YAML: {str(e).splitlines()[0]}") from None


def parse(data: bytes) -> tuple[Any, LineIndex]:
    """Parse one YAML document; raises :class:`YamlError` with a line for anything unreadable."""
    if len(data) > MAX_FILE_BYTES:
        raise YamlError(
            1, f"file is {len(data)} bytes, larger than the {MAX_FILE_BYTES} byte limit"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise YamlError(line, "file is not UTF-8 text") from None
    documents = [d for d in load_documents(text) if d is not None]
    if len(documents) != 1:
        found = "no document" if not documents else f"{len(documents)} documents"
        raise YamlError(1, f"expected exactly one YAML document, found {found}")
    return documents[0], LineIndex(text)


def error_line(e: MarkedYAMLError) -> int:
    """Where the user should look: where an unclosed bracket or quote opened, else where the
    parser stopped."""
    problem = e.problem or ""
    unclosed = "did not find expected" in problem or "unexpected end of stream" in problem
    mark = e.context_mark if unclosed and e.context_mark is not None else e.problem_mark
    mark = mark or e.context_mark
    return mark.line + 1 if mark is not None else 1


def _yaml_reason(e: MarkedYAMLError) -> str:
    problem = (e.problem or "").strip()
    if "duplicate key" in problem:
        key = re.search(r'duplicate key "([^"]*)"', problem)
        return f"duplicate key '{key.group(1)}'" if key else "duplicate key"
    context = (e.context or "").strip()
    reason = f"{context}: {problem}" if context and problem else problem or context
    return f"YAML syntax error: {reason}" if reason else "YAML syntax error"
