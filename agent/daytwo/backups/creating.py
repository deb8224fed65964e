"""Creating a backup: the cluster's data volumes copied while its writes are held, uploaded to
the schedule's location, committed by a manifest of checksums written last; older backups are
pruned only after one succeeded. A failed backup is recorded, and leaves nothing behind."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agent.clocks import Clock
from agent.contract import BackupParameters, ClusterState, DesiredState
from agent.daytwo import DayTwoError
from agent.daytwo.backups.locations import Location, LocationError, open_location
from agent.daytwo.history import History
from agent.daytwo.records import BackupFile, BackupResult, RunState, Trigger
from agent.drivers import DriverError
from agent.drivers.datavolumes import Volumes
from agent.errors import one_line

MANIFEST = "manifest.json"
FORMAT = "edgefleet.dev/backup-v1"
_ID = re.compile(r"^(?P<cluster>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-(?P<at>\d{8}T\d{6}Z)$")


class BackupFailed(DayTwoError):
    """A backup that cannot be made for a reason of its own (no volumes, bad parameters)."""


class Manifest(BaseModel):
    """What a backup holds; written last, read first by a restore."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["edgefleet.dev/backup-v1"] = "edgefleet.dev/backup-v1"
    id: str
    appliance: str
    site: str
    cluster: str
    mode: str
    revision: str
    createdAt: datetime
    expiresAt: datetime | None
    location: str
    prefix: str
    expiryHours: int | None
    namespaces: list[str]
    includeClusterResources: str
    consistency: str
    files: list[BackupFile]


@dataclass(frozen=True)
class BackupSettings:
    compress_level: int = 3  # gzip: a fast level, node data compresses well anyway


def backup_id(cluster: str, at: datetime) -> str:
    return f"{cluster}-{at.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def parse_id(text: str) -> tuple[str, datetime] | None:
    """(cluster, time) of a backup ID, None for anything else."""
    match = _ID.match(text)
    if match is None:
        return None
    at = datetime.strptime(match.group("at"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return match.group("cluster"), at


def prefix_of(parameters: BackupParameters, cluster: ClusterState) -> str:
    """Where a cluster's backups are kept in their location: its prefix, else its name."""
    return (parameters.prefix or cluster.name).strip("/")


def backup_cluster(
    state: DesiredState,
    cluster: ClusterState,
    parameters: BackupParameters,
    *,
    volumes: Volumes,
    history: History,
    clock: Clock,
    environ: Mapping[str, str],
    work_dir: Path,
    trigger: Trigger,
    settings: BackupSettings | None = None,
    due: datetime | None = None,
) -> BackupResult:
    """``due``: the schedule's run time, which names the backup: every appliance of a cluster
    spanning appliances runs the same schedule, so their parts share one backup ID, each in
    a folder named after its appliance."""
    settings = settings or BackupSettings()
    started = clock.now()
    identity = backup_id(cluster.name, due or started)
    prefix = prefix_of(parameters, cluster)
    folder = (
        f"{prefix}/{identity}/{state.appliance}"
        if cluster.spans_appliances
        else (f"{prefix}/{identity}")
    )
    expiry = parameters.expiryHours
    staging = work_dir / "staging" / identity
    location: Location | None = None
    uploaded: list[str] = []
    result = BackupResult(
        id=identity,
        cluster=cluster.name,
        location=parameters.location.name,
        trigger=trigger,
        state=RunState.FAILED,
        started_at=started,
        finished_at=started,
    )
    try:
        # Open the location first: bad credentials fail before any node is held
        location = open_location(parameters.location, environ=environ, ca_dir=work_dir / "ca")
        result = replace(result, location=location.describe())

        # Copy every volume while the cluster's writes are held
        files, consistency = _copy(
            cluster, volumes=volumes, staging=staging, level=settings.compress_level
        )

        # Upload the files, then commit with the manifest
        for file in files:
            key = f"{folder}/{file.name}"
            location.put(key, staging / file.name)
            uploaded.append(key)
        manifest = Manifest(
            id=identity,
            appliance=state.appliance,
            site=state.site,
            cluster=cluster.name,
            mode=cluster.mode,
            revision=state.revision,
            createdAt=started,
            expiresAt=None if not expiry else started + timedelta(hours=expiry),
            location=location.name,
            prefix=prefix,
            expiryHours=expiry,
            namespaces=list(parameters.namespaces),
            includeClusterResources=parameters.includeClusterResources,
            consistency=consistency,
            files=list(files),
        )
        location.put_bytes(f"{folder}/{MANIFEST}", manifest.model_dump_json(indent=2).encode())
    except (BackupFailed, LocationError, DriverError, OSError) as e:
        _discard(location, uploaded)
        return _record(history, replace(result, finished_at=clock.now(), error=one_line(e)))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = replace(result, state=RunState.DONE, files=files)

    # Prune what has expired, now that a newer backup exists
    if expiry:
        try:
            pruned = prune(
                location,
                prefix=prefix,
                cluster=cluster.name,
                older_than=clock.now() - timedelta(hours=expiry),
                keep=identity,
            )
            result = replace(result, pruned=pruned)
        except LocationError as e:
            result = replace(result, warning=f"pruning older backups failed: {one_line(e)}")
    return _record(history, replace(result, finished_at=clock.now()))


def prune(
    location: Location, *, prefix: str, cluster: str, older_than: datetime, keep: str
) -> tuple[str, ...]:
    """Remove this cluster's backups under ``prefix`` made before ``older_than``."""
    by_backup: dict[str, list[str]] = {}
    for key in location.list(prefix):
        backup = key.removeprefix(prefix + "/").split("/", 1)[0]
        by_backup.setdefault(backup, []).append(key)
    pruned = []
    for backup, keys in sorted(by_backup.items()):
        parsed = parse_id(backup)
        if backup == keep or parsed is None or parsed[0] != cluster or parsed[1] >= older_than:
            continue
        # the manifest goes first: a half-deleted backup must not look restorable
        keys.sort(key=lambda k: not k.endswith("/" + MANIFEST))
        location.delete(keys)
        pruned.append(backup)
    return tuple(pruned)


def _copy(
    cluster: ClusterState, *, volumes: Volumes, staging: Path, level: int
) -> tuple[tuple[BackupFile, ...], str]:
    found = volumes.node_volumes(cluster)
    if not found:
        raise BackupFailed(f"cluster {cluster.name} has no data volumes on this appliance")
    staging.mkdir(parents=True, exist_ok=True)
    with volumes.quiesced(cluster) as consistency:
        for volume in found:
            path = staging / f"{volume.volume}.tar.gz"
            with gzip.GzipFile(path, mode="wb", compresslevel=level, mtime=0) as out:
                volumes.export(volume, out)
    files = []
    for volume in found:
        path = staging / f"{volume.volume}.tar.gz"
        files.append(
            BackupFile(
                name=path.name,
                node=volume.node,
                pool=volume.pool,
                role=volume.role,
                volume=volume.volume,
                path=volume.path,
                size=path.stat().st_size,
                sha256=file_sha256(path),
            )
        )
    return tuple(files), consistency


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _discard(location: Location | None, keys: list[str]) -> None:
    if location is None or not keys:
        return
    try:
        location.delete(keys)
    except LocationError:
        pass  # no manifest was written: what is left is never taken for a backup


def _record(history: History, result: BackupResult) -> BackupResult:
    history.record_backup(result)
    return result
