"""Rollout state: one row per good revision, with its sites and appliance targets.

Everything the rollout needs to continue after a restart is here: the open wave, each
site's admission, soak start and failure, each appliance's release time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, func, select, update

from .records import RolloutRecord, RolloutSite, RolloutTarget
from .rows import as_dicts, first_as_dict
from .schema import rollout_sites, rollout_targets, rollouts
from .upserts import insert_many, update_many

OPEN_STATES = ("running", "halted")


class Rollouts:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # -- the rollout row ---------------------------------------------------------------
    def add(self, record: RolloutRecord) -> None:
        self._conn.execute(rollouts.insert().values(**_rollout_values(record)))

    def get(self, revision: str) -> RolloutRecord | None:
        row = self._conn.execute(select(rollouts).where(rollouts.c.revision == revision)).first()
        return _rollout(row._mapping) if row else None

    def latest(self) -> RolloutRecord | None:
        row = self._conn.execute(select(rollouts).order_by(rollouts.c.seq.desc()).limit(1)).first()
        return _rollout(row._mapping) if row else None

    def open(self) -> list[RolloutRecord]:
        """Rollouts running or halted, oldest first."""
        rows = self._conn.execute(
            select(rollouts).where(rollouts.c.state.in_(OPEN_STATES)).order_by(rollouts.c.seq)
        )
        return [_rollout(row._mapping) for row in rows]

    def save(self, record: RolloutRecord) -> None:
        values = _rollout_values(record)
        self._conn.execute(
            update(rollouts).where(rollouts.c.revision == record.revision).values(**values)
        )

    def many(self, revisions: Sequence[str]) -> dict[str, RolloutRecord]:
        rows = self._conn.execute(select(rollouts).where(rollouts.c.revision.in_(revisions)))
        return {row.revision: _rollout(row._mapping) for row in rows}

    def changed_counts(self, revisions: Sequence[str]) -> dict[str, int]:
        """How many sites each rollout changes."""
        rows = self._conn.execute(
            select(rollout_sites.c.revision, func.count())
            .where(rollout_sites.c.revision.in_(revisions), rollout_sites.c.changed)
            .group_by(rollout_sites.c.revision)
        )
        return {str(revision): int(n) for revision, n in rows}

    def introduced(self, appliance: str, digest: str, *, look_back: int = 200) -> str | None:
        """The revision whose rollout first targeted ``digest`` at ``appliance`` in its latest
        unbroken run of rollouts doing so (the commit that brought that state)."""
        rows = self._conn.execute(
            select(rollout_targets.c.revision, rollout_targets.c.digest)
            .join(rollouts, rollouts.c.revision == rollout_targets.c.revision)
            .where(rollout_targets.c.appliance == appliance)
            .order_by(rollouts.c.seq.desc())
            .limit(look_back)
        )
        found = None
        for revision, target in rows:
            if target != digest:
                break
            found = str(revision)
        return found

    # -- sites -------------------------------------------------------------------------
    def add_sites(self, sites: Iterable[RolloutSite]) -> None:
        insert_many(self._conn, rollout_sites, [_site_values(s) for s in sites])

    def sites(self, revision: str) -> list[RolloutSite]:
        rows = self._conn.execute(
            select(rollout_sites)
            .where(rollout_sites.c.revision == revision)
            .order_by(rollout_sites.c.wave, rollout_sites.c.site)
        )
        return [_site(row) for row in as_dicts(rows)]

    def site(self, revision: str, site: str) -> RolloutSite | None:
        rows = self._conn.execute(
            select(rollout_sites).where(
                rollout_sites.c.revision == revision, rollout_sites.c.site == site
            )
        )
        row = first_as_dict(rows)
        return _site(row) if row is not None else None

    def sites_named(self, revision: str, names: Sequence[str]) -> list[RolloutSite]:
        rows = self._conn.execute(
            select(rollout_sites).where(
                rollout_sites.c.revision == revision, rollout_sites.c.site.in_(names)
            )
        )
        return [_site(row) for row in as_dicts(rows)]

    def save_sites(self, sites: Sequence[RolloutSite]) -> None:
        rows = [_site_values(s) for s in sites]
        update_many(self._conn, rollout_sites, rows, keys=["revision", "site"])

    # -- appliance targets -------------------------------------------------------------
    def add_targets(self, targets: Iterable[RolloutTarget]) -> None:
        insert_many(self._conn, rollout_targets, [_target_values(t) for t in targets])

    def targets(
        self,
        revision: str,
        *,
        site: str | None = None,
        sites: Sequence[str] | None = None,
        appliances: Sequence[str] | None = None,
    ) -> list[RolloutTarget]:
        query = select(rollout_targets).where(rollout_targets.c.revision == revision)
        if site is not None:
            query = query.where(rollout_targets.c.site == site)
        if sites is not None:
            query = query.where(rollout_targets.c.site.in_(sites))
        if appliances is not None:
            query = query.where(rollout_targets.c.appliance.in_(appliances))
        rows = self._conn.execute(query.order_by(rollout_targets.c.appliance))
        return [_target(row) for row in as_dicts(rows)]

    def target(self, revision: str, appliance: str) -> RolloutTarget | None:
        rows = self._conn.execute(
            select(rollout_targets).where(
                rollout_targets.c.revision == revision, rollout_targets.c.appliance == appliance
            )
        )
        row = first_as_dict(rows)
        return _target(row) if row is not None else None

    def save_targets(self, targets: Sequence[RolloutTarget]) -> None:
        rows = [_target_values(t) for t in targets]
        update_many(self._conn, rollout_targets, rows, keys=["revision", "appliance"])


def _rollout_values(r: RolloutRecord) -> dict[str, object]:
    return {
        **r.__dict__,
        "waves": [dict(w) for w in r.waves],
        "failing": list(r.failing),
        "accepted": list(r.accepted),
    }


def _rollout(mapping: RowMapping) -> RolloutRecord:
    m = dict(mapping)
    return RolloutRecord(
        **{
            **m,
            "waves": tuple(m["waves"]),
            "failing": tuple(m["failing"]),
            "accepted": tuple(m["accepted"] or ()),
        }
    )


def _site_values(s: RolloutSite) -> dict[str, object]:
    return {
        **s.__dict__,
        "labels": dict(s.labels),
        "windows": [dict(w) for w in s.windows],
        "descriptions": dict(s.descriptions),
    }


def _site(mapping: Mapping[str, Any]) -> RolloutSite:
    m = dict(mapping)
    return RolloutSite(
        **{**m, "windows": tuple(m["windows"]), "descriptions": dict(m["descriptions"] or {})}
    )


def _target_values(t: RolloutTarget) -> dict[str, object]:
    return {**t.__dict__, "clusters": list(t.clusters), "shared": list(t.shared)}


def _target(m: Mapping[str, Any]) -> RolloutTarget:
    return RolloutTarget(**{**m, "clusters": tuple(m["clusters"]), "shared": tuple(m["shared"])})
