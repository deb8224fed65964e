"""Rollout waves: which wave a site belongs to, and how many of a wave's sites may fail.

The rollout decides with these rules and plan shows what they will decide, so they live
here, below both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Wave:
    """One rollout wave: the sites whose labels include every selector label."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def selects(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.labels.items())


def wave_of(labels: Mapping[str, str], waves: Sequence[Wave]) -> int:
    """The first wave selecting the site. Validation guarantees one does; a site none
    selects goes with the last wave rather than never receiving anything."""
    for index, wave in enumerate(waves):
        if wave.selects(labels):
            return index
    return len(waves) - 1


def allowance(max_failures: str, sites: int) -> int:
    """How many of a wave's ``sites`` may fail: a count, or a percentage rounded down
    (10% of a one-site wave is 0: any failure halts)."""
    text = max_failures.strip()
    if text.endswith("%"):
        return math.floor(sites * int(text[:-1]) / 100)
    return int(text)
