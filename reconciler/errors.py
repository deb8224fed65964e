"""Diagnostics: the one-line, file-and-line errors every stage reports to the user.

Loading, validation and rendering all produce :class:`Diagnostic` values rather than raising,
so that one run reports every problem at once, sorted by file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
