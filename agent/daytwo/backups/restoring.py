"""Restoring a backup into the cluster it was taken of, or another: find its manifest, fit its
files to the target's volumes, verify every file, then stop the nodes, write the volumes and
start them. Nothing changes until every check has passed, and a manifest is untrusted (every
appliance shares the location): its file names must be plain ``<volume>.tar.gz`` names and
each download must land inside the staging folder, checked before anything is written::

    RestoreError (agent.daytwo.DayTwoError)
    ├── BackupNotFound     no location holds the backup (nothing changed)
    ├── BackupCorrupted    a checksum, size, manifest or archive is wrong (nothing changed)
    ├── TargetMismatch     the target cluster is unknown or its nodes do not fit (nothing changed)
    └── RestoreFailed      a step of the restore itself failed (the nodes are started again)
"""

from __future__ import annotations

import re
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TypeVar

from pydantic import ValidationError

from agent.clocks import Clock
from agent.contract import BackupLocation, ClusterState, DesiredState
from agent.daytwo import DayTwoError
from agent.daytwo.backups.creating import MANIFEST, Manifest, file_sha256, parse_id, prefix_of
from agent.daytwo.backups.locations import (
    Location,
    LocationError,
    ObjectMissing,
    ObjectTooLarge,
    open_location,
)
from agent.daytwo.history import History
from agent.daytwo.records import BackupFile, RestoreResult
from agent.drivers import DriverError
from agent.drivers.datavolumes import ROOT, NodeVolume, Volumes
from agent.errors import one_line

T = TypeVar("T")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.tar\.gz")


class RestoreError(DayTwoError): ...


class BackupNotFound(RestoreError): ...


class BackupCorrupted(RestoreError): ...


class TargetMismatch(RestoreError): ...


class RestoreFailed(RestoreError): ...


def restore(
    backup: str,
    *,
    state: DesiredState,
    cluster: str | None = None,
    volumes: Volumes,
    history: History,
    clock: Clock,
    environ: Mapping[str, str],
    work_dir: Path,
) -> RestoreResult:
    """Restore ``backup`` into ``cluster`` (default: the cluster it was taken of)."""
    started = clock.now()

    # Find the backup and read its manifest
    location, folder, manifest = find_backup(
        backup, state=state, environ=environ, ca_dir=work_dir / "ca"
    )

    # Check what the manifest names before anything is written
    staging = work_dir / "restore" / backup
    _check_files(backup, manifest, staging)

    # Fit its files to the target cluster's volumes
    target = _target(state, cluster or manifest.cluster)
    try:
        pairs = _pair(backup, manifest.files, volumes.node_volumes(target))
    except DriverError as e:
        raise TargetMismatch(f"cluster {target.name}: {one_line(e)}") from e

    try:
        # Verify every file before touching a node
        staging.mkdir(parents=True, exist_ok=True, mode=0o700)
        for file, _ in pairs:
            target_file = _inside(backup, staging, file.name)
            _fetch(backup, location, f"{folder}/{file.name}", file, target_file)

        # Restore: stop, replace every volume's content, start
        try:
            with volumes.stopped(target):
                for file, volume in pairs:
                    volumes.replace(volume, staging / file.name)
        except DriverError as e:
            raise RestoreFailed(
                f"restoring {backup} into {target.name} failed: {one_line(e)}"
            ) from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    result = RestoreResult(
        backup=backup,
        source=manifest.cluster,
        cluster=target.name,
        started_at=started,
        finished_at=clock.now(),
        volumes=tuple(volume.volume for _, volume in pairs),
    )
    history.record_restore(result)
    return result


def find_backup(
    backup: str, *, state: DesiredState, environ: Mapping[str, str], ca_dir: Path
) -> tuple[Location, str, Manifest]:
    """The location and folder holding ``backup``'s part for this appliance, and its
    manifest. A cluster spanning appliances keeps each appliance's part in a folder of its
    own under the one backup ID (``<prefix>/<id>/<appliance>/``)."""
    parsed = parse_id(backup)
    if parsed is None:
        raise BackupNotFound(f"{backup!r} is not a backup ID (<cluster>-<YYYYmmddTHHMMSSZ>)")
    source = parsed[0]
    candidates: list[tuple[BackupLocation, str]] = []
    for cluster in sorted(state.clusters, key=lambda c: c.name != source):
        for schedule in cluster.schedules:
            if schedule.kind == "backup":
                where = (schedule.parameters.location, prefix_of(schedule.parameters, cluster))
                if where not in candidates:
                    candidates.append(where)
    if not candidates:
        raise BackupNotFound(f"backup {backup}: the desired state names no backup location")
    looked: list[str] = []
    spans = any(c.name == source and c.spans_appliances for c in state.clusters)
    part = f"/{state.appliance}" if spans else ""
    for params, prefix in candidates:
        folder = f"{prefix}/{backup}{part}"
        try:
            location = open_location(params, environ=environ, ca_dir=ca_dir)
            raw = location.get_bytes(f"{folder}/{MANIFEST}", limit=MAX_MANIFEST_BYTES)
        except ObjectTooLarge as e:
            raise BackupCorrupted(f"backup {backup}: {MANIFEST} is not valid: {one_line(e)}") from e
        except ObjectMissing:
            looked.append(f"{params.name}:{prefix}")
            continue
        except LocationError as e:
            looked.append(f"{params.name}:{prefix} ({one_line(e)})")
            continue
        try:
            manifest = Manifest.model_validate_json(raw)
        except ValidationError as e:
            reason = one_line(str(e.errors()[0]["msg"]))
            raise BackupCorrupted(f"backup {backup}: {MANIFEST} is not valid: {reason}") from e
        if manifest.id != backup:
            raise BackupCorrupted(f"backup {backup}: {MANIFEST} describes {manifest.id}")
        return location, folder, manifest
    raise BackupNotFound(f"backup {backup} not found (looked in {', '.join(looked)})")


def _check_files(backup: str, manifest: Manifest, staging: Path) -> None:
    """Each file a plain ``<volume>.tar.gz`` name, named once, landing inside ``staging``."""
    seen: set[str] = set()
    for file in manifest.files:
        name = file.name
        if not _FILE.fullmatch(name) or name != f"{file.volume}.tar.gz" or name in seen:
            raise BackupCorrupted(
                f"backup {backup}: {MANIFEST} names a file {name[:100]!r} that is not a plain"
                " <volume>.tar.gz name of its own"
            )
        seen.add(name)
        _inside(backup, staging, name)


def _inside(backup: str, staging: Path, name: str) -> Path:
    target = staging / name
    if target.resolve().parent != staging.resolve():
        raise BackupCorrupted(f"backup {backup}: {name[:100]!r} would be written outside staging")
    return target


def _target(state: DesiredState, name: str) -> ClusterState:
    for cluster in state.clusters:
        if cluster.name == name and cluster.phase == "present":
            return cluster
    raise TargetMismatch(f"cluster {name} is not in this appliance's desired state")


def _pair(
    backup: str, files: Sequence[BackupFile], volumes: Sequence[NodeVolume]
) -> list[tuple[BackupFile, NodeVolume]]:
    """Backup files with target volumes: by role, node order within the role, mount path."""
    pairs: list[tuple[BackupFile, NodeVolume]] = []
    for role in ("control-plane", "worker"):
        sources = _by_node([(f.node, f.path, f) for f in files if f.role == role])
        targets = _by_node([(v.node, v.path, v) for v in volumes if v.role == role])
        if len(sources) != len(targets):
            raise TargetMismatch(
                f"backup {backup} holds {len(sources)} {role} node(s),"
                f" the target cluster has {len(targets)} here"
            )
        for source, target in zip(sources, targets, strict=True):
            if sorted(source) != sorted(target):
                raise TargetMismatch(
                    f"backup {backup}: volumes at {sorted(source)} do not fit {sorted(target)}"
                )
            pairs.extend((source[path], target[path]) for path in sorted(source))
    return pairs


def _by_node(items: Sequence[tuple[str, str, T]]) -> list[dict[str, T]]:
    nodes: dict[str, dict[str, T]] = {}
    for node, path, item in items:
        nodes.setdefault(node, {})[path] = item
    return list(nodes.values())


def _fetch(backup: str, location: Location, key: str, file: BackupFile, target: Path) -> None:
    try:
        # the size first: a file the manifest does not describe is never downloaded
        size = location.size(key)
        if size != file.size:
            raise BackupCorrupted(
                f"backup {backup}: {file.name} is corrupted ({size} bytes, manifest says"
                f" {file.size})"
            )
        location.get(key, target)
    except ObjectMissing as e:
        raise BackupCorrupted(f"backup {backup}: {file.name} is missing") from e
    except LocationError as e:
        raise BackupNotFound(f"backup {backup}: {one_line(e)}") from e
    size = target.stat().st_size
    if size != file.size:
        raise BackupCorrupted(
            f"backup {backup}: {file.name} is corrupted ({size} bytes, manifest says {file.size})"
        )
    if file_sha256(target) != file.sha256:
        raise BackupCorrupted(f"backup {backup}: {file.name} is corrupted (sha256 mismatch)")
    try:
        with tarfile.open(target, mode="r:*") as archive:
            for member in archive:
                parts = PurePosixPath(member.name).parts
                if not parts or parts[0] != ROOT or ".." in parts or member.name.startswith("/"):
                    raise BackupCorrupted(
                        f"backup {backup}: {file.name} holds {member.name!r} outside {ROOT}/"
                    )
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BackupCorrupted(f"backup {backup}: {file.name} is not a readable archive") from e
