"""The root of every error the agent raises on purpose; each boundary hangs its tree below it::

    AgentError
    ├── ConfigError        agent.config            the configuration file
    ├── FlagError          agent.installer         an edge-installer flag
    ├── WindowInvalid      agent.windows           a maintenance window that does not parse
    ├── StateRefused       agent.apply.admission   a desired state that may not be applied
    ├── InventoryError     agent.apply.inventory   the inventory and journal (SQLite)
    ├── LinkError          agent.link.client       the reconciler over HTTP
    ├── BundleError        agent.link.bundles      an offline bundle that cannot be trusted
    ├── DriverError        agent.drivers           Docker and libvirt, applying and day-2
    └── DayTwoError        agent.daytwo            runs, history, schedules, backup locations

``edgefleet-agent`` catches :class:`AgentError` alone and prints its message as one line.
"""

from __future__ import annotations

import re

# C0 and C1 controls and DEL, and the invisible characters that reorder or hide text
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff"
_IN_LINES = re.compile(f"[{_CONTROLS}]")
_IN_ONE_LINE = re.compile(f"[\t\n{_CONTROLS}]")


class AgentError(Exception):
    """Raised on purpose; the message is one line for an operator, never a secret."""


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """The first line of an error's message (its type's name when it has none), bounded."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return first[:limit]


def printable(text: str, *, lines: bool = True) -> str:
    """``text`` safe to show on a terminal: every control character (an escape sequence, a
    carriage return, a direction override) is written as its escape, ``\\x1b``; tabs and
    newlines stay unless ``lines`` is False (a table cell, one line of a list)."""
    pattern = _IN_LINES if lines else _IN_ONE_LINE
    return pattern.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
