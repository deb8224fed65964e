"""The Jinja sandbox every template and templated value is rendered in.

Templates arrive through pull requests and are untrusted: ``SandboxedEnvironment`` refuses
unsafe attributes (``__class__``, ``__globals__``...) and format-string tricks,
``StrictUndefined`` turns every unknown name into an error, the globals are cut down to
``range``, ``dict`` and ``namespace``, and ``*``/``**`` are bounded so a template cannot
build a gigabyte string. Every failure becomes a :class:`TemplateFailure` with the template's
line.
"""

from __future__ import annotations

import json
import traceback
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.runtime import Undefined
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Namespace

MAX_OUTPUT = 1_000_000  # characters one template may produce
_MAX_OPERAND = 100_000


class TemplateFailure(Exception):
    """A template that cannot be rendered; ``line`` is its 1-based line or 0 if unknown."""

    def __init__(self, name: str, line: int, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.line = line
        self.reason = reason


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise TemplateError("exponent too large")
        if operator == "*":
            for a, b in ((left, right), (right, left)):
                if isinstance(a, str | list | tuple) and isinstance(b, int):
                    if len(a) * b > _MAX_OPERAND:
                        raise TemplateError("repetition would build a value too large")
        return super().call_binop(context, operator, left, right)


class Sandbox:
    """Compiles and renders untrusted templates; compiled templates are kept by source."""

    def __init__(self) -> None:
        self.env = _Sandbox(
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
            cache_size=0,
        )
        self.env.globals = {
            "range": self.env.globals["range"],
            "dict": dict,
            "namespace": Namespace,
        }
        # JSON without HTML escaping: the output is YAML, where "<" needs no escape
        self.env.filters["tojson"] = _tojson
        self._compiled: dict[tuple[str, str], Any] = {}
        self._expressions: dict[str, Any] = {}

    def render(self, name: str, source: str, context: dict[str, Any]) -> str:
        template = self._compiled.get((name, source))
        try:
            if template is None:
                template = self.env.from_string(source)
                template.name = template.filename = name
                self._compiled[(name, source)] = template
            output: str = template.render(context)
        except TemplateSyntaxError as e:
            raise TemplateFailure(
                name, e.lineno or 0, f"template syntax error: {e.message}"
            ) from None
        except Exception as e:  # anything a hostile template can raise, with its line
            raise TemplateFailure(name, _template_line(e, name), _reason(e)) from None
        if len(output) > MAX_OUTPUT:
            raise TemplateFailure(name, 0, f"output is larger than {MAX_OUTPUT} characters")
        return output

    def evaluate(self, name: str, expression: str, context: dict[str, Any]) -> Any:
        """The value of one expression, with its own type (for templated values)."""
        try:
            compiled = self._expressions.get(expression)
            if compiled is None:
                compiled = self.env.compile_expression(expression, undefined_to_none=False)
                self._expressions[expression] = compiled
            value = compiled(**context)
            if isinstance(value, Undefined):
                str(value)  # raises the UndefinedError with its name
        except TemplateSyntaxError as e:
            raise TemplateFailure(name, 0, f"template syntax error: {e.message}") from None
        except Exception as e:
            raise TemplateFailure(name, 0, _reason(e)) from None
        return value

    def is_template(self, value: str) -> bool:
        return "{{" in value or "{%" in value


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
