"""One parsed and modelled document of the fleet repository, with its file and lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import Diagnostic
from .messages import reasons
from .yamldocs import LineIndex, Loc, YamlError, parse

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Doc(Generic[M]):
    """A model read from ``path``; ``line(*loc)`` finds any field's line."""

    path: str
    model: M
    data: Any
    lines: LineIndex

    def line(self, *loc: str | int) -> int:
        return self.lines.line(loc)

    def at(self, loc: Loc, message: str) -> Diagnostic:
        return Diagnostic(self.path, self.lines.line(loc), message)


@dataclass(frozen=True)
class Parsed:
    """A file parsed to plain data, before it is checked against a model."""

    path: str
    data: Any
    lines: LineIndex

    def at(self, loc: Loc, message: str) -> Diagnostic:
        return Diagnostic(self.path, self.lines.line(loc), message)


def parse_file(path: str, content: bytes) -> Parsed | Diagnostic:
    try:
        data, lines = parse(content)
    except YamlError as e:
        return Diagnostic(path, e.line, e.message)
    return Parsed(path, data, lines)


def to_model(parsed: Parsed, model: type[M]) -> Doc[M] | list[Diagnostic]:
    try:
        value = model.model_validate(parsed.data)
    except ValidationError as e:
        return [parsed.at(loc, message) for loc, message in reasons(e)]
    return Doc(parsed.path, value, parsed.data, parsed.lines)
