"""Text shown on a terminal, by ``edgefleet`` and ``edgefleet-agent`` alike: what came from a
repository, an agent or a report can hold control characters (an escape sequence that
rewrites the screen, a carriage return, a direction override), written here as escapes."""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.text import Text

# C0 and C1 controls and DEL, and the invisible characters that reorder or hide text
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff"
_IN_LINES = re.compile(f"[{_CONTROLS}]")
_IN_ONE_LINE = re.compile(f"[\t\n{_CONTROLS}]")


def printable(text: str, *, lines: bool = True) -> str:
    """``text`` with every control character written as its escape (``\\x1b``); tabs and
    newlines stay unless ``lines`` is False (a table cell, one line of a list)."""
    pattern = _IN_LINES if lines else _IN_ONE_LINE
    return pattern.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class TerminalConsole(Console):
    """A rich console for data: no markup, no highlighting, and every string it renders
    (a line, a table cell) escaped as one line."""

    def __init__(self, **options: Any) -> None:
        super().__init__(markup=False, highlight=False, **options)

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(printable(text, lines=False), **options)
