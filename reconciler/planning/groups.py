"""Sites with the same change, grouped: a profile change across a thousand stores is one
change made a thousand times, shown once with the names of the sites it reaches.

Two site changes are the same when they are equal once each site's own name (which its
cluster, appliance and node names and the diff's file names carry) is set aside, and the
digests, which differ by site, are left out.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .changes import SiteChange


@dataclass(frozen=True)
class ChangeGroup:
    """Sites that change the same way; ``change`` is the first site's, shown for all."""

    sites: tuple[str, ...]
    change: SiteChange


def group_changes(sites: Iterable[SiteChange]) -> tuple[ChangeGroup, ...]:
    """Groups in the order of their first site, largest first among equals."""
    found: dict[str, list[SiteChange]] = {}
    for site in sites:
        found.setdefault(_shape(site), []).append(site)
    groups = [ChangeGroup(tuple(s.name for s in group), group[0]) for group in found.values()]
    return tuple(sorted(groups, key=lambda g: (-len(g.sites), g.sites[0])))


def _shape(site: SiteChange) -> str:
    document = dataclasses.asdict(site)
    for appliance in document["appliances"]:
        appliance["before"] = appliance["after"] = None
    text = json.dumps(document, sort_keys=True, ensure_ascii=False)
    own_name = re.compile(rf"(?<![A-Za-z0-9]){re.escape(site.name)}(?![A-Za-z0-9])")
    return own_name.sub("\0site\0", text)
