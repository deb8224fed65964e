"""Agent registrations: an appliance's facts and the hash of its current token.

Only hashes are stored; looking an agent up by a token means hashing the token first. A
first registration inserts (two racing for one appliance: the second is a StoreConflict),
a rotation replaces the hash it was asked with, a reset deletes the row.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, RowMapping, bindparam, delete, func, select, update

from .records import AgentRecord
from .schema import agents, assignments
from .upserts import upsert


class Agents:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def put(self, record: AgentRecord, *, token_hash: str) -> None:
        """Register or re-register: the new token hash replaces the old one."""
        upsert(
            self._conn,
            agents,
            {**record.__dict__, "token_hash": token_hash},
            keys=["appliance"],
        )

    def add(self, record: AgentRecord, *, token_hash: str) -> None:
        """A first registration; raises StoreConflict when the appliance has one."""
        self._conn.execute(agents.insert().values(**record.__dict__, token_hash=token_hash))

    def rotate(self, record: AgentRecord, *, old_hash: str, token_hash: str) -> bool:
        """Replace the token ``old_hash`` (and the facts) with a new one; False when the
        appliance no longer holds ``old_hash`` (a racing rotation or reset)."""
        values = {k: v for k, v in record.__dict__.items() if k != "appliance"}
        result = self._conn.execute(
            update(agents)
            .where(agents.c.appliance == record.appliance, agents.c.token_hash == old_hash)
            .values(**values, token_hash=token_hash)
        )
        return bool(result.rowcount)

    def remove(self, appliance: str) -> bool:
        """Forget a registration (its token stops working); False when there was none."""
        result = self._conn.execute(delete(agents).where(agents.c.appliance == appliance))
        return bool(result.rowcount)

    def undeclared(self) -> int:
        """How many registered appliances the fleet repository does not declare."""
        query = (
            select(func.count())
            .select_from(
                agents.outerjoin(assignments, assignments.c.appliance == agents.c.appliance)
            )
            .where(assignments.c.declared.is_not(True))
        )
        return int(self._conn.execute(query).scalar_one())

    def get(self, appliance: str) -> AgentRecord | None:
        row = self._conn.execute(select(*_COLUMNS).where(agents.c.appliance == appliance)).first()
        return _record(row._mapping) if row else None

    def by_token_hash(self, token_hash: str) -> tuple[AgentRecord, str] | None:
        """The agent holding this token hash, with the stored hash to compare against."""
        row = self._conn.execute(
            select(*_COLUMNS, agents.c.token_hash).where(agents.c.token_hash == token_hash)
        ).first()
        return (_record(row._mapping), str(row._mapping["token_hash"])) if row else None

    def get_many(self, appliances: Iterable[str]) -> dict[str, AgentRecord]:
        wanted = sorted(set(appliances))
        found: dict[str, AgentRecord] = {}
        for start in range(0, len(wanted), 500):
            rows = self._conn.execute(
                select(*_COLUMNS).where(agents.c.appliance.in_(wanted[start : start + 500]))
            )
            found.update((row.appliance, _record(row._mapping)) for row in rows)
        return found

    def all(self) -> list[AgentRecord]:
        rows = self._conn.execute(select(*_COLUMNS).order_by(agents.c.appliance))
        return [_record(row._mapping) for row in rows]

    def touch(self, appliance: str, *, at: float) -> None:
        self.touch_many([appliance], at=at)

    def touch_many(self, appliances: Iterable[str], *, at: float) -> None:
        rows = [{"key_appliance": a, "last_seen": at} for a in sorted(set(appliances))]
        if rows:
            self._conn.execute(_TOUCH, rows)


_COLUMNS = [c for c in agents.c if c.name != "token_hash"]
_TOUCH = (
    update(agents)
    .where(agents.c.appliance == bindparam("key_appliance"))
    .values(last_seen=bindparam("last_seen"))
)


def _record(m: RowMapping) -> AgentRecord:
    return AgentRecord(
        appliance=m["appliance"],
        hostname=m["hostname"],
        ip=m["ip"],
        arch=m["arch"],
        agent_version=m["agent_version"],
        registered_at=m["registered_at"],
        last_seen=m["last_seen"],
    )
