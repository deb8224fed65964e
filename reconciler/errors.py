"""Diagnostics: the one-line, file-and-line errors every stage reports to the user.

Loading, validation and rendering all produce :class:`Diagnostic` values rather than raising,
so that one run reports every problem at once, sorted by file and line. The values of
sensitive variables never reach one: :func:`masked` writes them as ``***``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

MASK = "***"


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in the fleet repository, located at ``path:line``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {"file": self.path, "line": self.line, "message": self.message}


class FleetError(Exception):
    """Raised when a stage cannot go on; carries every diagnostic found so far."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


def mask(text: str, secrets: Collection[str]) -> str:
    """``text`` with every secret in it written as ``***`` (the longest first, so a secret
    that contains another is masked whole)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and secret in text:
            text = text.replace(secret, MASK)
    return text


def masked(diagnostics: Iterable[Diagnostic], secrets: Collection[str]) -> list[Diagnostic]:
    if not secrets:
        return list(diagnostics)
    return [replace(d, message=mask(d.message, secrets)) for d in diagnostics]
