"""What the rollout will do with a planned change: the waves it goes through, the node
replacements maintenance windows will hold, and what deserves a warning.

Pure over the plan's site changes; the wave and window rules are the rollout's own
(:mod:`.waves`, :mod:`.windows`), and what replaces nodes is :func:`.changes.disruptive`'s
verdict, carried by each appliance change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from agent.contract import MaintenanceWindow

from .changes import SiteChange
from .waves import Wave, wave_of
from .windows import next_opening, window_open

MAX_NAMED = 10  # deleted clusters and the like named one by one in a warning


@dataclass(frozen=True)
class SitePlace:
    """Where a site stands in the rollout: its labels pick the wave, its windows and time
    zone hold node replacements."""

    labels: Mapping[str, str]
    timezone: str
    windows: tuple[MaintenanceWindow, ...]


@dataclass(frozen=True)
class WaveChange:
    """What changes in one wave, in rollout order."""

    name: str
    sites: tuple[str, ...]
    clusters: int  # clusters added, changed or deleted
    nodes_added: int
    nodes_replaced: int  # made again from their image
    nodes_removed: int
    nodes_restarted: int = 0  # on their own disks
    nodes_losing_data: int = 0  # replaced on a new volume, or removed


@dataclass(frozen=True)
class WindowHold:
    """A site whose node replacements wait for its maintenance window."""

    site: str
    wave: str
    timezone: str
    opens: datetime | None  # the next window's start; None: a window is open now
    windows: str  # "sat, sun 02:00 for 4h"


@dataclass(frozen=True)
class Outlook:
    waves: tuple[WaveChange, ...]
    held: tuple[WindowHold, ...]
    unheld: tuple[str, ...]  # sites that replace nodes and have no maintenance window
    warnings: tuple[str, ...]


def outlook(
    sites: Sequence[SiteChange],
    places: Mapping[str, SitePlace],
    waves: Sequence[Wave],
    *,
    at: datetime,
) -> Outlook:
    """``places``: every changed site's place (a removed site's from the base);
    ``waves``: the head's rollout waves (at least one); ``at``: the time windows are judged from."""
    members: list[list[SiteChange]] = [[] for _ in waves]
    wave_of_site: dict[str, int] = {}
    for site in sites:
        index = wave_of(places[site.name].labels, waves)
        wave_of_site[site.name] = index
        members[index].append(site)
    by_wave = tuple(
        _wave_change(wave.name, found) for wave, found in zip(waves, members, strict=True)
    )
    held: list[WindowHold] = []
    unheld: list[str] = []
    for site in sites:
        if not any(a.disruptive for a in site.appliances):
            continue
        place = places[site.name]
        wave = by_wave[wave_of_site[site.name]].name
        if not place.windows:
            unheld.append(site.name)
            continue
        opens = None
        if not window_open(place.windows, place.timezone, at):
            opens = next_opening(place.windows, place.timezone, at)
        held.append(WindowHold(site.name, wave, place.timezone, opens, _windows(place.windows)))
    return Outlook(by_wave, tuple(held), tuple(unheld), tuple(_warnings(sites, by_wave)))


def _wave_change(name: str, sites: list[SiteChange]) -> WaveChange:
    nodes = [n for s in sites for c in s.clusters for n in c.nodes]
    return WaveChange(
        name=name,
        sites=tuple(s.name for s in sites),
        clusters=sum(len(s.clusters) for s in sites),
        nodes_added=sum(n.kind == "added" for n in nodes),
        nodes_replaced=sum(n.kind == "replaced" for n in nodes),
        nodes_removed=sum(n.kind == "removed" for n in nodes),
        nodes_restarted=sum(n.kind == "restarted" for n in nodes),
        nodes_losing_data=sum(n.loses_data for n in nodes),
    )


def _warnings(sites: Sequence[SiteChange], waves: Sequence[WaveChange]) -> list[str]:
    found: list[str] = []
    first = next((i for i, w in enumerate(waves) if w.sites), None)
    if first is not None and first > 0:
        skipped = [w.name for w in waves[:first]]
        plural = "s" if len(skipped) > 1 else ""
        found.append(
            f"this change skips the {', '.join(skipped)} wave{plural}: none of its sites "
            f"change, so it starts in wave {waves[first].name} "
            f"({len(waves[first].sites)} sites) without soaking anywhere first"
        )
    deleted = [f"{c.name} at {s.name}" for s in sites for c in s.clusters if c.kind == "removed"]
    if deleted:
        what = "deletes a cluster" if len(deleted) == 1 else f"deletes {len(deleted)} clusters"
        found.append(f"{what}: {_named(deleted)}")
    removed = [s.name for s in sites if s.kind == "removed"]
    if removed:
        what = "removes a site" if len(removed) == 1 else f"removes {len(removed)} sites"
        found.append(f"{what}: {_named(removed)} (its appliances are emptied)")
    return found


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    more = len(items) - MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def _windows(windows: Sequence[MaintenanceWindow]) -> str:
    return "; ".join(f"{', '.join(w.days)} {w.start} for {w.duration}" for w in windows)
