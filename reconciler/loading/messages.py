"""Turn pydantic validation errors into one-line, user-facing reasons."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ..models.profile import LAYER_TAGS
from .yamldocs import Loc

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def dotted(loc: Loc) -> str:
    """``spec.nodePools[0].size`` for a location."""
    out = ""
    for key in loc:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += f".{key}" if out else key
    return out


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string '{value[:60]}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing"
    return type(value).__name__


def reason(error: ErrorDetails) -> tuple[Loc, str]:
    """The location to point at and the reason, for one pydantic error."""
    loc = tuple(part for part in error["loc"] if part not in LAYER_TAGS)
    kind = error["type"]
    field = dotted(loc)
    if kind == "extra_forbidden":
        return loc, f"unknown field '{field}'"
    if kind == "missing":
        return loc[:-1], f"missing required field '{field}'"
    if kind == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        return loc, f"{field}: {message}" if field else message
    if kind in _TYPE_NAMES:
        return loc, f"{field} must be {_TYPE_NAMES[kind]} (got {_describe(error['input'])})"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        got = _describe(error["input"])
        return loc, f"{field} must be one of {expected} (got {got})"
    if kind in ("too_short", "too_long"):
        return loc, f"{field}: {error['msg'].lower()}"
    message = error["msg"]
    return loc, f"{field}: {message[0].lower()}{message[1:]}" if field else message


def reasons(exc: ValidationError) -> list[tuple[Loc, str]]:
    return [reason(e) for e in exc.errors(include_url=False)]
