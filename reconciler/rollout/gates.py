"""Gates: what holds a unit of the rollout back, as a reason an operator can read.

The same gates serve sites and appliances. A *turn* gate holds a unit until every unit
ahead of it has settled: a wave waits for the sites of the wave before it to soak, and in
a cluster spanning several appliances a disruptive change waits for the appliance before
it to report its nodes Running. A *window* gate holds a disruptive change until the
site's maintenance window is open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from agent.contract import MaintenanceWindow

from ..planning.windows import next_opening, window_open

Unit = TypeVar("Unit")


@dataclass(frozen=True)
class Hold:
    """Why a unit is held back."""

    reason: str


def turn_gate(
    ahead: Iterable[Unit], *, settled: Callable[[Unit], bool], describe: Callable[[Unit], str]
) -> Hold | None:
    """Open once every unit ``ahead`` has settled; otherwise held by the first that has not."""
    for unit in ahead:
        if not settled(unit):
            return Hold(describe(unit))
    return None


def window_gate(
    *,
    disruptive: bool,
    windows: Sequence[MaintenanceWindow],
    timezone: str,
    now: datetime,
) -> Hold | None:
    """Open for non-disruptive changes, for sites without windows, and inside a window."""
    if not disruptive or not windows or window_open(windows, timezone, now):
        return None
    opening = next_opening(windows, timezone, now)
    if opening is None:
        return Hold("waiting for a maintenance window")
    local = opening.astimezone(ZoneInfo(timezone))
    return Hold(f"waiting for the maintenance window at {local:%a %Y-%m-%d %H:%M} {timezone}")


def first_hold(*holds: Callable[[], Hold | None]) -> Hold | None:
    """The first gate that holds, evaluating gates lazily in order."""
    for gate in holds:
        hold = gate()
        if hold is not None:
            return hold
    return None
