"""Maintenance windows, as plan shows them and the rollout holds disruptive changes for
them: the agent's own rules (:mod:`agent.windows`), so the reconciler and the agent open and
close a window at the same instant."""

from __future__ import annotations

from agent.windows import next_opening, window_open

__all__ = ["next_opening", "window_open"]
