"""Maintenance windows for the rollout's window gate: the agent's own rules (:mod:`agent.windows`),
so the reconciler and the agent open and close a window at the same instant."""

from __future__ import annotations

from agent.windows import next_opening, window_open

__all__ = ["next_opening", "window_open"]
