"""Parse one YAML file into plain data, with the line of every field available on demand.

Parsing takes the fast C path of ruamel.yaml; line numbers are needed only when something is
wrong, so the round-trip parser (which keeps positions) runs lazily, the first time a line is
asked for. Hostile input is bounded before it can cost much: the file size, the nesting depth
and the number of nodes after aliases are expanded (an alias bomb) all have limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
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
            except (YAMLError, RecursionError):
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


_FLOW_CHAR = re.compile(r"[\[\]{}]")


def _check_flow_depth(text: str) -> None:
    """Refuse deep ``[[[[...`` nesting before the C parser, which recurses, ever sees it."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for match in _FLOW_CHAR.finditer(text):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_DEPTH:
            line = text.count("\n", 0, match.start()) + 1
            raise YamlError(line, f"nesting deeper than {MAX_DEPTH} levels")


def _check_shape(data: Any) -> None:
    """Bound depth and node count as if every alias were expanded, without expanding them."""
    budget = MAX_NODES
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise YamlError(1, f"document expands to more than {MAX_NODES} values (an alias bomb?)")
        if depth > MAX_DEPTH:
            raise YamlError(1, f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


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
    _check_flow_depth(text)
    try:
        documents = list(YAML(typ="safe", pure=False).load_all(text))
    except MarkedYAMLError as e:
        raise YamlError(error_line(e), _yaml_reason(e)) from None
    except YAMLError as e:
        raise YamlError(1, f"not valid YAML: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise YamlError(1, f"nesting deeper than {MAX_DEPTH} levels") from None
    documents = [d for d in documents if d is not None]
    if len(documents) != 1:
        found = "no document" if not documents else f"{len(documents)} documents"
        raise YamlError(1, f"expected exactly one YAML document, found {found}")
    _check_shape(documents[0])
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
