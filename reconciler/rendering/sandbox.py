"""The Jinja sandbox every template and templated value is rendered in.

Templates arrive through pull requests and are untrusted: ``SandboxedEnvironment`` refuses
unsafe attributes (``__class__``, ``__globals__``...) and format-string tricks,
``StrictUndefined`` turns every unknown name into an error, and the globals are cut down to
``range``, ``dict`` and ``namespace``. Every operator, call, filter, loop step, ``~`` and
output passes the meter of :mod:`.limits` (sized beforehand by :mod:`.guards`), so a template
cannot run past the time limit or build past the memory and output limits. Every failure
becomes a :class:`TemplateFailure` with the template's line.
"""

from __future__ import annotations

import functools
import json
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from types import BuiltinMethodType
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import SandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace, _PassArg

from . import guards
from .limits import (
    PLAIN,
    STEP_BYTES,
    LimitExceeded,
    Meter,
    RenderLimits,
    current,
    metered,
)
from .memo import Path, Reads

_FORMATS = ("format", "format_map")
# the containers a template can change in place, and their methods that change nothing
_CHANGEABLE = (list, dict, set)
_UNCHANGING = frozenset(
    {
        "get", "keys", "values", "items", "copy", "count", "index", "union", "intersection",
        "difference", "symmetric_difference", "issubset", "issuperset", "isdisjoint",
        "fromkeys",
    }
)  # fmt: skip


class TemplateFailure(Exception):
    """A template that cannot be rendered; ``line`` is its 1-based line or 0 if unknown;
    ``limit`` says it broke a rendering limit (then rendering the commit stops)."""

    def __init__(self, name: str, line: int, reason: str, *, limit: bool = False) -> None:
        super().__init__(reason)
        self.name = name
        self.line = line
        self.reason = reason
        self.limit = limit


class _Formatter(guards.LimitedFormatting, SandboxedFormatter):
    def __init__(self, env: SandboxedEnvironment, meter: Meter) -> None:
        super().__init__(env)
        self.meter = meter


class _LimitedEnvironment(SandboxedEnvironment):
    """Jinja's sandbox with every growing operation passing the current meter."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = guards.GuardingCodeGenerator

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        meter = current()
        meter.tick()
        guards.check_binop(meter, operator, left, right)
        return meter.produced(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        meter = current()
        if time.monotonic() > meter.deadline:
            meter.tick()
        if type(__obj) is BuiltinMethodType and type(__obj.__self__) in _CHANGEABLE:
            if __obj.__name__ not in _UNCHANGING:
                meter.changes += 1
        if type(__obj) is BuiltinMethodType and __obj.__name__ in guards.READING_METHODS:
            return super().call(__context, __obj, *args, **kwargs)  # nothing grows
        if not PLAIN.issuperset(map(type, args)):
            args = tuple([meter.materialized(a) for a in args])
        guards.check_method(meter, __obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        receiver = getattr(__obj, "__self__", None)
        if isinstance(receiver, list | dict | set):  # append, extend, update...
            meter.allow(len(receiver))
        return meter.produced(result)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if type(value) is not BuiltinMethodType or value.__name__ not in _FORMATS:
            return super().wrap_str_format(value)
        if not isinstance(value.__self__, str):
            return None
        text: str = value.__self__
        is_format_map = value.__name__ == "format_map"

        def formatted(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                mapping = args[0]
                args, kwargs = (), mapping
            return str(_Formatter(self, current()).vformat(text, args, kwargs))

        return functools.update_wrapper(formatted, value)


# what guarded templates call for each loop and ``~`` (guards.GuardingCodeGenerator)
def _loop(iterable: Any) -> Iterator[Any]:
    return current().bounded(iterable)


def _buffered_loop(iterable: Any) -> Iterator[Any]:
    return current().bounded(iterable, step_bytes=STEP_BYTES)


def _joined(*parts: Any) -> str:
    meter = current()
    meter.allow(sum([meter.text(part) for part in parts]))
    return str(meter.produced("".join([str(part) for part in parts])))


def _finalize(value: Any) -> Any:
    """Every ``{{ output }}`` that is not a string already: its text is measured before it
    is made."""
    if type(value) is not str:
        meter = current()
        meter.charge(meter.text(value, "an output"))
    return value


def _concat(parts: Iterable[str]) -> str:
    """What Jinja joins a template's, a macro's or a ``{% set %}`` block's output with: the
    parts (each bounded, but a loop can emit many) are counted before they are joined."""
    parts = list(parts)
    meter = current()
    meter.allow(sum(map(len, parts)), "the output")
    return str(meter.produced("".join(parts)))


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    if name in guards.BOUNDED_FILTERS:
        return function
    passes = _PassArg.from_obj(function) is not None
    if name in guards.TEXT_FILTERS:
        return _text_filter(function, passes)
    check = guards.FILTER_CHECKS.get(name, guards.check_text)
    materialize = name == "join"

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        meter = current()
        if time.monotonic() > meter.deadline:
            meter.tick()
        head, rest = (args[:1], args[1:]) if passes else ((), args)
        if materialize and rest:  # a generator it would join in C, unbounded
            rest = (meter.materialized(rest[0]), *rest[1:])
        check(meter, rest, kwargs)
        result = function(*head, *rest, **kwargs)
        if type(result) is str:  # the common case, measured here without a call
            if len(result) > meter.limits.output:
                meter.allow(len(result))
            meter.memory_left -= len(result) + 49
            if meter.memory_left < 0:
                meter.charge(0)
            return result
        if isinstance(result, Iterator):
            return meter.bounded(result)
        return meter.produced(result)

    return guarded


def _text_filter(function: Callable[..., Any], passes: bool) -> Callable[..., Any]:
    """A filter that turns its value into text and at most a few times longer: a string
    goes straight through; anything else is sized as text first."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        value = args[1 if passes else 0] if len(args) > passes else ""
        if type(value) is not str:
            meter = current()
            meter.tick()
            meter.text(value)
            return meter.produced(function(*args, **kwargs))
        return function(*args, **kwargs)

    return guarded


class Sandbox:
    """Compiles and renders untrusted templates within ``limits``; compiled templates are
    kept by source."""

    def __init__(self, limits: RenderLimits | None = None) -> None:
        self.limits = limits or RenderLimits()
        self.env = _LimitedEnvironment(
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
            cache_size=0,
            finalize=_finalize,
            optimized=False,  # nothing of a template is evaluated while it compiles
        )
        self.env.concat = _concat  # type: ignore[method-assign]
        self.env.globals = {
            "range": self.env.globals["range"],
            "dict": dict,
            "namespace": Namespace,
        }
        # JSON without HTML escaping: the output is YAML, where "<" needs no escape
        self.env.filters["tojson"] = _tojson
        self.env.filters = {
            name: _guarded_filter(name, function) for name, function in self.env.filters.items()
        }
        self.env.filters[guards.LOOP_FILTER] = _loop
        self.env.filters[guards.BUFFERED_LOOP_FILTER] = _buffered_loop
        self.env.filters[guards.CONCAT_FILTER] = _joined
        self._compiled: dict[tuple[str, str], Any] = {}
        self._reads: dict[str, Reads | None] = {}
        self._expressions: dict[str, Any] = {}

    def limited(self) -> AbstractContextManager[Meter]:
        """One budget for everything rendered inside (a site); nested uses share it."""
        return metered(self.limits)

    def render(self, name: str, source: str, context: dict[str, Any]) -> str:
        with self.limited():
            try:
                template = self._compiled.get((name, source))
                if template is None:
                    template = self.env.from_string(source)
                    template.name = template.filename = name
                    self._compiled[(name, source)] = template
                output = _capped(template, context, self.limits.output)
            except TemplateSyntaxError as e:
                raise TemplateFailure(
                    name, e.lineno or 0, f"template syntax error: {e.message}"
                ) from None
            except Exception as e:  # anything a hostile template can raise, with its line
                raise _failure(name, _template_line(e, name), e) from None
        return output

    def evaluate(self, name: str, expression: str, context: dict[str, Any]) -> Any:
        """The value of one expression, with its own type (for templated values)."""
        with self.limited() as meter:
            try:
                compiled = self._expressions.get(expression)
                if compiled is None:
                    compiled = self.env.compile_expression(expression, undefined_to_none=False)
                    self._expressions[expression] = compiled
                value = compiled(**context)
                if isinstance(value, Undefined):
                    str(value)  # raises the UndefinedError with its name
                meter.text(value)
            except TemplateSyntaxError as e:
                raise TemplateFailure(name, 0, f"template syntax error: {e.message}") from None
            except Exception as e:
                raise _failure(name, 0, e) from None
        return value

    def reads(self, source: str) -> Reads | None:
        """What ``source`` may read of its context, whichever way its branches go: each name
        it looks up, with the paths it follows from it (:func:`read_paths`); None when it
        does not parse (rendering it then fails, with its reason). Its output depends on
        those values alone unless it draws a random number (then None too): the globals and
        filters read no context."""
        if source in self._reads:
            return self._reads[source]
        reads: Reads | None = None
        if "random" not in source:  # the random filter, by name or passed to map()
            try:
                ast = self.env.parse(source)
                reads = read_paths(ast, meta.find_undeclared_variables(ast))
            except Exception:  # a syntax error, or nesting too deep for the parser
                reads = None
        self._reads[source] = reads
        return reads

    def is_template(self, value: str) -> bool:
        return "{{" in value or "{%" in value


def _capped(template: Template, context: dict[str, Any], limit: int) -> str:
    """A template's output, refused as soon as it passes ``limit`` characters (while it is
    rendered, not after)."""
    kept: list[str] = []
    size = 0
    try:
        for part in template.root_render_func(template.new_context(context)):
            if part:  # an empty part is not kept: only what counts toward the limit is
                size += len(part)
                if size > limit:
                    raise LimitExceeded(
                        f"the output would be larger than the {limit}-character limit"
                    )
                kept.append(part)
    except Exception:
        template.environment.handle_exception()  # re-raised with the template's lines
    return "".join(kept)


def _failure(name: str, line: int, error: BaseException) -> TemplateFailure:
    if isinstance(error, LimitExceeded):
        return TemplateFailure(name, line, f"rendering limit: {error}", limit=True)
    if isinstance(error, MemoryError):
        return TemplateFailure(name, line, "rendering limit: out of memory", limit=True)
    return TemplateFailure(name, line, _reason(error))


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, indent=indent)


def _template_line(error: BaseException, name: str) -> int:
    line = 0
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename in (name, "<template>") and frame.lineno:
            line = frame.lineno
    return line


def _reason(error: BaseException) -> str:
    kind = type(error).__name__
    text = str(error).splitlines()[0] if str(error) else kind
    if kind == "UndefinedError":
        return f"undefined: {text}"
    if kind == "SecurityError":
        return f"not allowed in the sandbox: {text}"
    return f"{kind}: {text}"[:300]


def read_paths(ast: nodes.Template, names: Iterable[str]) -> Reads:
    """For each of ``names`` (those a template looks up in its context), the paths it
    follows from it: ``site.network.cidrs`` is the path ``.network .cidrs`` from ``site``,
    ``packs['k3s']`` the path ``['k3s']`` from ``packs``, and ``'k3s' in packs`` the path
    ``in 'k3s'``. A name used any other way (passed whole, looped over, subscripted by a
    variable) is read whole: its one path is empty."""
    found: dict[str, set[Path]] = {name: set() for name in names}

    def chain(node: nodes.Node) -> tuple[str, Path] | None:
        steps: list[tuple[str, str | int]] = []
        while True:
            if isinstance(node, nodes.Getattr):
                steps.append((".", node.attr))
            elif (
                isinstance(node, nodes.Getitem)
                and isinstance(node.arg, nodes.Const)
                and type(node.arg.value) in (str, int)
            ):
                steps.append(("[]", node.arg.value))
            else:
                break
            node = node.node
        if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in found:
            return node.name, tuple(reversed(steps))
        return None

    def visit(node: nodes.Node) -> None:
        followed = chain(node)
        if (
            followed is None
            and isinstance(node, nodes.Compare)
            and isinstance(node.expr, nodes.Const)
            and type(node.expr.value) in (str, int)
            and len(node.ops) == 1
            and node.ops[0].op in ("in", "notin")
        ):
            followed = chain(node.ops[0].expr)
            if followed is not None:
                followed = (followed[0], (*followed[1], ("in", node.expr.value)))
        if followed is not None:
            found[followed[0]].add(followed[1])
            return
        for child in node.iter_child_nodes():
            visit(child)

    visit(ast)
    return tuple(
        (name, ((),) if not paths or () in paths else tuple(sorted(paths, key=repr)))
        for name, paths in sorted(found.items())
    )
