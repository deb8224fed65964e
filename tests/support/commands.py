"""What a command run in-process answered: its exit code and output."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CliResult:
    code: int
    out: str
    err: str
