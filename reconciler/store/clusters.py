"""Clusters as the reconciler keeps them across releases: each one's join secret (made once,
random, served only to its member appliances) and whether it formed; and the leases that let
one appliance of a cluster at a time take its nodes down."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from sqlalchemy import Connection, RowMapping, and_, delete, or_, select, update

from .records import ClusterJoinRecord, LeaseRecord
from .schema import cluster_joins, leases
from .upserts import upsert, upsert_many

Key = tuple[str, str]  # (site, cluster)


class ClusterJoins:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def keep(self, present: Iterable[Key], *, at: float) -> None:
        """``present`` are every cluster of the latest release: each gets a secret once, and
        one Git dropped and brought back starts again unformed; the others are retired
        (their secrets are kept: a revert brings the same cluster back)."""
        wanted = set(present)
        known = {(r.site, r.cluster): r for r in self._all()}
        fresh = [
            {
                "site": site,
                "cluster": cluster,
                "secret": secrets.token_hex(32),
                "created_at": at,
                "formed_at": None,
                "retired_at": None,
            }
            for site, cluster in sorted(wanted - set(known))
        ]
        upsert_many(self._conn, cluster_joins, fresh, keys=["site", "cluster"], update=[])
        back = [k for k in sorted(wanted & set(known)) if known[k].retired_at is not None]
        gone = [k for k in sorted(set(known) - wanted) if known[k].retired_at is None]
        changes: list[tuple[Key, float | None]] = [
            *((k, None) for k in back),
            *((k, at) for k in gone),
        ]
        for (site, cluster), retired in changes:
            self._conn.execute(
                update(cluster_joins)
                .where(cluster_joins.c.site == site, cluster_joins.c.cluster == cluster)
                .values(retired_at=retired, formed_at=None)
            )

    def get_many(self, keys: Iterable[Key]) -> dict[Key, ClusterJoinRecord]:
        wanted = sorted(set(keys))
        found: dict[Key, ClusterJoinRecord] = {}
        for start in range(0, len(wanted), 200):
            chunk = wanted[start : start + 200]
            rows = self._conn.execute(
                select(cluster_joins).where(
                    or_(
                        *(
                            and_(cluster_joins.c.site == s, cluster_joins.c.cluster == c)
                            for s, c in chunk
                        )
                    )
                )
            )
            found.update(((r.site, r.cluster), _join(r._mapping)) for r in rows)
        return found

    def formed(self, site: str, clusters: Iterable[str], *, at: float) -> list[str]:
        """Mark those of ``clusters`` that had not formed yet as formed; returns them."""
        names = sorted(set(clusters))
        if not names:
            return []
        rows = self._conn.execute(
            select(cluster_joins.c.cluster).where(
                cluster_joins.c.site == site,
                cluster_joins.c.cluster.in_(names),
                cluster_joins.c.formed_at.is_(None),
                cluster_joins.c.retired_at.is_(None),
            )
        )
        newly = sorted(str(r.cluster) for r in rows)
        if newly:
            self._conn.execute(
                update(cluster_joins)
                .where(cluster_joins.c.site == site, cluster_joins.c.cluster.in_(newly))
                .values(formed_at=at)
            )
        return newly

    def _all(self) -> list[ClusterJoinRecord]:
        return [_join(r._mapping) for r in self._conn.execute(select(cluster_joins))]


class Leases:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, site: str, cluster: str) -> LeaseRecord | None:
        row = self._conn.execute(
            select(leases).where(leases.c.site == site, leases.c.cluster == cluster)
        ).first()
        return LeaseRecord(**dict(row._mapping)) if row else None

    def held(self, *, now: float) -> list[LeaseRecord]:
        """Every lease that has not expired."""
        rows = self._conn.execute(select(leases).where(leases.c.expires_at > now))
        return [LeaseRecord(**dict(r._mapping)) for r in rows]

    def put(self, lease: LeaseRecord) -> None:
        upsert(self._conn, leases, lease.__dict__, keys=["site", "cluster"])

    def drop(self, site: str, cluster: str, *, holder: str) -> bool:
        """Give a lease back; False when ``holder`` did not hold it."""
        result = self._conn.execute(
            delete(leases).where(
                leases.c.site == site, leases.c.cluster == cluster, leases.c.holder == holder
            )
        )
        return bool(result.rowcount)


def _join(m: RowMapping) -> ClusterJoinRecord:
    return ClusterJoinRecord(**dict(m))
