"""What an operation that can build far more than its inputs (``center(N)``, ``"%0Nd" % x``,
``replace``, ``l * n``...) would cost, sized before it runs; and the compile-time rewrite that
sends every loop step and ``~`` through the meter. Used by :mod:`.sandbox`."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeGuard

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.visitor import NodeTransformer

from .limits import LimitExceeded, Meter, text_size

MAX_JSON_INDENT = 16
_SCALARS = frozenset({str, int, float, bool, type(None)})
MAX_EXPONENT = 64

_PERCENT = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?"
    r"[hlL]?(?P<conversion>[diouxXeEfFgGcrsa%])"
)
_DIGITS = re.compile(r"\d+")


# -- operators ------------------------------------------------------------------------------


def check_binop(meter: Meter, operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for a, b in ((left, right), (right, left)):
            if isinstance(a, str | bytes | list | tuple) and isinstance(b, int):
                meter.allow(len(a) * max(b, 0), "a repetition")
        if _is_int(left) and _is_int(right):
            _bits(meter, left.bit_length() + right.bit_length())
    elif operator == "**":
        if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise LimitExceeded(f"an exponent larger than {MAX_EXPONENT}")
        if _is_int(left) and _is_int(right) and right > 0:
            _bits(meter, left.bit_length() * right)
    elif operator == "%" and isinstance(left, str):
        check_percent(meter, left, right)
    elif operator == "+":
        sizes = [len(x) for x in (left, right) if isinstance(x, str | bytes | list | tuple)]
        if len(sizes) == 2:
            meter.allow(sum(sizes))


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _bits(meter: Meter, bits: int) -> None:
    if bits > meter.limits.output:
        raise LimitExceeded("a number would be too large")


def check_percent(meter: Meter, fmt: str, args: Any) -> None:
    """``fmt % args``: widths and precisions, and the text of each argument used."""
    limit = meter.limits.output
    positional = list(args) if isinstance(args, tuple) else [args]
    total = len(fmt)
    for match in _PERCENT.finditer(fmt):
        if match["conversion"] == "%":
            continue
        widths = []
        for part in ("width", "precision"):
            spec = match[part]
            if spec == "*":
                taken = positional.pop(0) if positional else 0
                widths.append(abs(taken) if _is_int(taken) else 0)
            elif spec:
                widths.append(int(spec))
        if match["key"] is not None and isinstance(args, Mapping):
            argument = args.get(match["key"], "")
        else:
            argument = positional.pop(0) if positional else ""
        text = meter.text(argument) if match["conversion"] in "rsa" else 24
        total += max([text, *widths])
        if total > limit:
            meter.allow(total, "a formatted string")


# -- str.format ------------------------------------------------------------------------------


class LimitedFormatting:
    """Mixed into Jinja's sandboxed formatter: each field's width and precision, and the
    running length of the result, are checked before the field is formatted."""

    meter: Meter
    _written = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        for digits in _DIGITS.findall(format_spec):
            self.meter.allow(int(digits), "a format width")
        self._written += max(self.meter.text(value), 1)
        self.meter.allow(self._written, "a formatted string")
        return string.Formatter.format_field(self, value, format_spec)  # type: ignore[arg-type]


# -- methods and filters ---------------------------------------------------------------------


def _width(meter: Meter, args: Sequence[Any], kwargs: Mapping[str, Any], *, key: str) -> None:
    width = args[0] if args else kwargs.get(key, 0)
    if _is_int(width):
        meter.allow(width, f"{key}={width}")


def _replace(meter: Meter, text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    if old and len(new) <= len(old):
        return  # nothing grows
    times = len(text) + 1 if old == "" else text.count(old)
    if _is_int(count) and count >= 0:
        times = min(times, count)
    meter.allow(len(text) + times * max(len(new) - len(old), 0))


def _join(meter: Meter, separator: Any, items: Any) -> None:
    if isinstance(items, list | tuple):
        size = sum(meter.text(item) for item in items)
        size += max(len(items) - 1, 0) * (len(separator) if isinstance(separator, str) else 1)
        meter.allow(size)


def check_method(meter: Meter, method: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Calls of ``str`` methods whose result can be far larger than the string."""
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(method, "__name__", "")
    if name in ("center", "ljust", "rjust", "zfill"):
        _width(meter, args, kwargs, key="width")
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if _is_int(size):
            meter.allow(len(owner) + owner.count("\t") * size)
    elif name == "replace":
        _replace(meter, owner, *args[:3], **{k: v for k, v in kwargs.items() if k == "count"})
    elif name == "join" and args:
        _join(meter, owner, args[0])
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        meter.allow(len(owner) * max(longest, 1))


FilterCheck = Callable[[Meter, Sequence[Any], Mapping[str, Any]], None]


def _center(meter: Meter, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    _width(meter, args[1:], kwargs, key="width")


def _indent(meter: Meter, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    text = str(args[0]) if args else ""
    width = args[1] if len(args) > 1 else kwargs.get("width", 4)
    per_line = len(width) if isinstance(width, str) else width if _is_int(width) else 0
    meter.allow(len(text) + (text.count("\n") + 1) * per_line)


def _wordwrap(meter: Meter, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    text = str(args[0]) if args else ""
    width = args[1] if len(args) > 1 else kwargs.get("width", 79)
    wrap = args[3] if len(args) > 3 else kwargs.get("wrapstring")
    breaks = len(text) // max(width if _is_int(width) else 1, 1) + 1
    meter.allow(len(text) + breaks * (len(wrap) if isinstance(wrap, str) else 1))


def _format(meter: Meter, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    if args and isinstance(args[0], str):
        check_percent(meter, args[0], dict(kwargs) if kwargs else tuple(args[1:]))


def _replace_filter(meter: Meter, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    if len(args) >= 3:
        _replace(meter, str(args[0]), args[1], args[2], kwargs.get("count", args[3:4] or -1))


def _join_filter(meter: Meter, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    separator = args[1] if len(args) > 1 else kwargs.get("d", "")
    if args:
        _join(meter, str(separator), args[0])


def _count(position: int, key: str) -> FilterCheck:
    def check(meter: Meter, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        count = args[position] if len(args) > position else kwargs.get(key, 0)
        if _is_int(count):
            meter.allow(count, f"{key}={count}")

    return check


def _tojson(meter: Meter, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    indent = args[1] if len(args) > 1 else kwargs.get("indent")
    if _is_int(indent) and indent > MAX_JSON_INDENT:
        raise LimitExceeded(f"a JSON indent larger than {MAX_JSON_INDENT}")
    if args and type(args[0]) not in _SCALARS:  # a scalar's JSON is measured when made
        _indented(meter, args[0], indent if _is_int(indent) else 0)


def _pprint(meter: Meter, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    if args:
        _indented(meter, args[0], 1)


def _indented(meter: Meter, value: Any, indent: int) -> None:
    meter.allow(text_size(value, meter.limits.output, indent=indent))


def _sum(meter: Meter, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    # from a number, adding lists or strings fails at once; from a list it is quadratic
    start = args[2] if len(args) > 2 else kwargs.get("start", 0)
    if not isinstance(start, int | float):
        raise LimitExceeded("sum adds numbers only")


def check_text(meter: Meter, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """A filter that turns its value into text first (``upper``, ``string``, ``e``...): the
    text of a list holding one long string many times is sized before it is made."""
    if args and type(args[0]) is not str:
        meter.text(args[0])


# filters whose result is no larger than their arguments and which never turn a value into
# text: they run as Jinja has them (their arguments are bounded when they are built)
BOUNDED_FILTERS = frozenset(
    {
        "abs", "attr", "count", "d", "default", "dictsort", "filesizeformat", "first",
        "float", "groupby", "int", "items", "last", "length", "list", "map", "max", "min",
        "random", "reject", "rejectattr", "reverse", "round", "select", "selectattr", "sort",
        "unique",
    }
)  # fmt: skip

# filters that turn a value into text at most a few times longer (escaping, case): only a
# value that is not a string yet is sized first
TEXT_FILTERS = frozenset(
    {
        "capitalize", "e", "escape", "forceescape", "lower", "safe", "string", "striptags",
        "title", "trim", "upper", "urlencode", "urlize", "wordcount", "xmlattr",
    }
)  # fmt: skip

# methods that read: their result is no larger than what they read from
READING_METHODS = frozenset(
    {
        "get", "keys", "values", "items", "startswith", "endswith", "lower", "upper",
        "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "count", "find",
        "rfind", "index", "rindex", "isdigit", "isalpha", "isalnum", "isspace", "islower",
        "isupper", "title", "capitalize", "casefold", "swapcase", "partition", "rpartition",
        "removeprefix", "removesuffix", "copy", "pop", "popitem", "remove", "sort",
        "reverse", "clear", "isdecimal", "isnumeric", "isidentifier", "istitle",
    }
)  # fmt: skip

FILTER_CHECKS: dict[str, FilterCheck] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "format": _format,
    "replace": _replace_filter,
    "join": _join_filter,
    "batch": _count(1, "linecount"),
    "slice": _count(1, "slices"),
    "truncate": _count(1, "length"),
    "tojson": _tojson,
    "pprint": _pprint,
    "sum": _sum,
}


# -- loops and concatenation ----------------------------------------------------------------

LOOP_FILTER = "edgefleet_loop"
BUFFERED_LOOP_FILTER = "edgefleet_buffered_loop"
CONCAT_FILTER = "edgefleet_concat"


class _Guard(NodeTransformer):
    """Every ``for`` iterates through the ``edgefleet_loop`` filter and every ``~`` joins
    through ``edgefleet_concat``, so both pass the meter (filters are called directly, which
    costs less than a sandboxed call). A loop inside a macro, a call or filter block or a
    ``{% set %}`` block collects its output in a list until the block ends, so each of its
    steps is charged to the memory limit too (``edgefleet_buffered_loop``)."""

    def __init__(self) -> None:
        self.buffered = 0

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 - Jinja's visitor names
        self.generic_visit(node)
        name = BUFFERED_LOOP_FILTER if self.buffered else LOOP_FILTER
        node.iter = nodes.Filter(node.iter, name, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        first, *rest = node.nodes
        return nodes.Filter(first, CONCAT_FILTER, rest, [], None, None, lineno=node.lineno)

    def _buffering(self, node: nodes.Node) -> nodes.Node:
        self.buffered += 1
        try:
            return self.generic_visit(node)
        finally:
            self.buffered -= 1

    visit_Macro = visit_CallBlock = visit_FilterBlock = visit_AssignBlock = _buffering  # noqa: N815


class GuardingCodeGenerator(CodeGenerator):
    """Jinja's code generator, run on a template whose loops and ``~`` are guarded."""

    def visit_Template(  # noqa: N802
        self, node: nodes.Template, frame: Frame | None = None
    ) -> None:
        _Guard().visit(node)
        super().visit_Template(node, frame)
