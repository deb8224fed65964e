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


class AgentError(Exception):
    """Raised on purpose; the message is one line for an operator, never a secret."""


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """The first line of an error's message (its type's name when it has none), bounded."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return first[:limit]
