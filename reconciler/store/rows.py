"""Rows as plain dicts, for the reads of thousands of rows a rollout decision makes:
``dict(row._mapping)`` builds a mapping view of each row first, at four times the cost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import CursorResult


def as_dicts(result: CursorResult[Any]) -> Iterator[dict[str, Any]]:
    """Each row of ``result`` as a dict of its columns, by name."""
    keys = tuple(result.keys())
    for row in result:
        yield dict(zip(keys, row, strict=True))


def first_as_dict(result: CursorResult[Any]) -> dict[str, Any] | None:
    """The first row of ``result`` as a dict (the result is closed after it); None when
    there is none."""
    keys = tuple(result.keys())
    row = result.first()
    return dict(zip(keys, row, strict=True)) if row is not None else None
