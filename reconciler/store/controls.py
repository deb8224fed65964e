"""Operator switches that outlive a revision: the rollout paused, by whom and since when."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from .records import Control
from .schema import controls
from .upserts import upsert


class Controls:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, name: str) -> Control | None:
        row = self._conn.execute(select(controls).where(controls.c.name == name)).first()
        return Control(**dict(row._mapping)) if row else None

    def set(self, name: str, value: Any, *, by: str, at: float) -> None:
        upsert(
            self._conn,
            controls,
            {"name": name, "value": value, "set_by": by, "set_at": at},
            keys=["name"],
        )
