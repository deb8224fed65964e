"""Events for operators: rollout steps, failed revisions, what agents reported; kept per
partition (an appliance's quota, a site, the fleet, each security kind apart), so no one's
events can erase another's history."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Delete,
    RowMapping,
    String,
    and_,
    bindparam,
    delete,
    literal,
    select,
)

from .records import EventRecord
from .schema import events
from .upserts import insert_many, upsert_many

AGENT = "agent"  # the kind of every event an agent reports
SECURITY_KINDS = frozenset(
    {
        "agent-registered",
        "appliance-removed",
        "appliance-reset",
        "enrolment-issued",
        "registration-refused",
        "rollout-paused",
        "rollout-resumed",
        "wave-promoted",
    }
)


# one bound value each, not one list: a trim statement runs for many partitions at once
_SECURITY = [literal(kind) for kind in sorted(SECURITY_KINDS)]


@dataclass(frozen=True)
class Retention:
    appliance: int = 200  # events one appliance reported
    site: int = 1_000  # rollout steps of one site
    fleet: int = 2_000  # events of no site: the rollout's own, failed revisions
    security: int = 10_000  # of each security kind


RETENTION = Retention()


class Events:
    def __init__(self, conn: Connection, retention: Retention = RETENTION) -> None:
        self._conn = conn
        self._retention = retention
        self.added: list[EventRecord] = []  # by this transaction, for what follows its commit

    def add(self, records: Iterable[EventRecord]) -> None:
        """Append events in order; one an agent already sent (same appliance and key) is
        skipped. The partitions they fall in are trimmed to their retention."""
        added = list(records)
        self.added += added
        for keyed, run in groupby(added, key=lambda r: r.key is not None):
            rows = [{k: v for k, v in r.__dict__.items() if k != "id"} for r in run]
            if keyed:
                upsert_many(self._conn, events, rows, keys=["appliance", "key"], update=[])
            else:
                insert_many(self._conn, events, rows)
        keep = self._retention
        appliances = {r.appliance for r in added if r.kind == AGENT and r.appliance}
        self._trim_each(_reported_by, sorted(appliances), keep.appliance)
        sites = {r.site for r in added if _partition(r) == "site" and r.site}
        self._trim_each(_steps_of, sorted(sites), keep.site)
        if any(_partition(r) == "fleet" for r in added):
            self._trim(_fleet(), keep.fleet)
        for kind in sorted({r.kind for r in added if r.kind in SECURITY_KINDS}):
            self._trim(events.c.kind == kind, keep.security)

    def recent(
        self,
        *,
        site: str | None = None,
        appliance: str | None = None,
        fleet: bool = False,
        limit: int = 50,
    ) -> list[EventRecord]:
        """The newest events first; ``fleet``: only those of no site (the rollout's own,
        operators' actions, failed revisions)."""
        query = select(events).order_by(events.c.id.desc()).limit(limit)
        if fleet:
            query = query.where(events.c.site.is_(None))
        if site is not None:
            query = query.where(events.c.site == site)
        if appliance is not None:
            query = query.where(events.c.appliance == appliance)
        return [_record(row._mapping) for row in self._conn.execute(query)]

    def prune(self) -> int:
        """Trim the fleet's own and the security partitions (an appliance's and a site's
        are trimmed as they grow); returns how many events were deleted."""
        keep = self._retention
        deleted = self._trim(_fleet(), keep.fleet)
        for kind in sorted(SECURITY_KINDS):
            deleted += self._trim(events.c.kind == kind, keep.security)
        return deleted

    def _trim(self, where: ColumnElement[bool], keep: int) -> int:
        """Delete all but the newest ``keep`` events ``where`` selects."""
        result = self._conn.execute(_trimmed(where, keep))
        return int(result.rowcount)

    def _trim_each(
        self,
        partition: Callable[[BindParameter[str]], ColumnElement[bool]],
        names: list[str],
        keep: int,
    ) -> None:
        """:meth:`_trim` of each partition named (a wave opening to thousands of sites): one
        statement, run for each name."""
        if names:
            name = bindparam("name", type_=String)
            self._conn.execute(_trimmed(partition(name), keep), [{"name": n} for n in names])


def _partition(record: EventRecord) -> str:
    if record.kind in SECURITY_KINDS:
        return "security"
    if record.kind == AGENT:
        return "appliance"
    return "site" if record.site is not None else "fleet"


def _trimmed(where: ColumnElement[bool], keep: int) -> Delete:
    oldest_kept = (
        select(events.c.id)
        .where(where)
        .order_by(events.c.id.desc())
        .offset(max(keep - 1, 0))
        .limit(1)
        .scalar_subquery()
    )
    return delete(events).where(where, events.c.id < oldest_kept)


def _reported_by(appliance: str | BindParameter[str]) -> ColumnElement[bool]:
    return and_(events.c.appliance == appliance, events.c.kind == AGENT)


def _steps_of(site: str | BindParameter[str]) -> ColumnElement[bool]:
    return and_(events.c.site == site, events.c.kind != AGENT, events.c.kind.not_in(_SECURITY))


def _fleet() -> ColumnElement[bool]:
    return and_(
        events.c.site.is_(None), events.c.kind != AGENT, events.c.kind.not_in(_SECURITY)
    )


def _record(m: RowMapping) -> EventRecord:
    return EventRecord(**dict(m))
