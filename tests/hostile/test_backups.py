"""A backup store is shared by every appliance, so a manifest is untrusted: a restore refuses
any file name that is not a plain ``<volume>.tar.gz`` of its own before anything is written,
keys never fold ``//`` or ``.`` into a valid key, and a location names EDGEFLEET_ variables."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.contract import (
    BackupLocation,
    BackupParameters,
    BackupSchedule,
    ClusterState,
    DesiredState,
)
from agent.daytwo.backups.creating import MANIFEST
from agent.daytwo.backups.locations import (
    DirectoryLocation,
    LocationInvalid,
    open_location,
)
from agent.daytwo.backups.restoring import BackupCorrupted, RestoreError, restore
from agent.daytwo.history import History
from agent.drivers.datavolumes import NodeVolume
from tests.support.fleet import FleetFiles
from tests.support.hostile import edgefleet, run_measured
from tests.support.states import cluster, state

BACKUP = "pos-20260101T020000Z"
PREFIX = "store-1/pos"
VOLUME = "pos-main-1-data"


class RecordingVolumes:
    """One control-plane data volume; records whether nodes were stopped or written."""

    def __init__(self) -> None:
        self.stopped_for: list[str] = []
        self.replaced: list[tuple[str, Path]] = []

    def node_volumes(self, target: ClusterState) -> tuple[NodeVolume, ...]:
        return (NodeVolume("pos-main-1", "main", "control-plane", VOLUME, "/var/lib/rancher"),)

    @contextmanager
    def quiesced(self, target: ClusterState) -> Iterator[str]:
        yield "paused"

    def export(self, volume: NodeVolume, out: Any) -> None:
        raise AssertionError("not a backup")

    @contextmanager
    def stopped(self, target: ClusterState) -> Iterator[None]:
        self.stopped_for.append(target.name)
        yield

    def replace(self, volume: NodeVolume, archive: Path) -> None:
        self.replaced.append((volume.volume, archive))


class FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 1, 2, tzinfo=UTC)


def desired(store: Path) -> DesiredState:
    location = BackupLocation(name="nas", provider="file", path=str(store))
    schedule = BackupSchedule(
        name="backup",
        cron="0 2 * * *",
        timezone="UTC",
        parameters=BackupParameters(location=location, prefix=PREFIX),
    )
    pos = cluster("pos", appliance="a1", workers=0).model_copy(update={"schedules": [schedule]})
    return state("a1", pos)


def archive() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = b"etcd snapshot"
        info = tarfile.TarInfo("data/db")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def write_backup(store: Path, files: list[dict[str, Any]], *, content: bytes | None = None) -> None:
    """A backup in ``store`` whose manifest lists ``files`` (each stored under its name when
    that is a plain name)."""
    folder = store / PREFIX / BACKUP
    folder.mkdir(parents=True, exist_ok=True)
    body = archive() if content is None else content
    for f in files:
        name = f["name"]
        if name and "/" not in name and name not in (".", ".."):
            try:
                (folder / name).write_bytes(body)
            except (OSError, ValueError):
                pass
    manifest = {
        "id": BACKUP, "appliance": "a1", "site": "test-site", "cluster": "pos",
        "mode": "containerized", "revision": "rev-1", "createdAt": "2026-01-01T02:00:00Z",
        "expiresAt": None, "location": "nas", "prefix": PREFIX, "expiryHours": None,
        "namespaces": [], "includeClusterResources": "auto", "consistency": "paused",
        "files": files,
    }  # fmt: skip
    (folder / MANIFEST).write_text(json.dumps(manifest))


def entry(name: str, *, size: int | None = None, volume: str = VOLUME) -> dict[str, Any]:
    body = archive()
    return {
        "name": name, "node": "pos-main-1", "pool": "main", "role": "control-plane",
        "volume": volume, "path": "/var/lib/rancher",
        "size": len(body) if size is None else size, "sha256": hashlib.sha256(body).hexdigest(),
    }  # fmt: skip


def run_restore(root: Path, volumes: RecordingVolumes) -> Any:
    work = root / "work"
    work.mkdir(exist_ok=True)
    return restore(
        BACKUP,
        state=desired(root / "store"),
        volumes=volumes,
        history=History(data_dir=work / "history"),
        clock=FixedClock(),
        environ={},
        work_dir=work,
    )


def outside(tmp_path: Path) -> Path:
    return tmp_path / "elsewhere" / "pwned.tar.gz"


HOSTILE = [
    ("absolute", lambda t: [entry(str(outside(t)))], "is not a plain <volume>.tar.gz name"),
    ("dot-dot", lambda t: [entry("../../../elsewhere/pwned.tar.gz")], "is not a plain"),
    ("sub-folder", lambda t: [entry(f"sub/{VOLUME}.tar.gz")], "is not a plain"),
    ("dot", lambda t: [entry(".")], "is not a plain"),
    ("empty", lambda t: [entry("")], "is not a plain"),
    ("another-volume", lambda t: [entry("other-data.tar.gz")], "is not a plain"),
    ("control-characters", lambda t: [entry(f"{VOLUME}\n.tar.gz")], "is not a plain"),
    (
        "twice",
        lambda t: [entry(f"{VOLUME}.tar.gz"), entry(f"{VOLUME}.tar.gz")],
        "is not a plain <volume>.tar.gz name of its own",
    ),
    (
        "volume-is-a-path",
        lambda t: [entry("../x.tar.gz", volume="../x")],
        "is not a plain",
    ),
    (
        "size-lies",
        lambda t: [entry(f"{VOLUME}.tar.gz", size=10**12)],
        "is corrupted (",
    ),
]


@pytest.mark.parametrize(
    ("files", "reason"), [row[1:] for row in HOSTILE], ids=[row[0] for row in HOSTILE]
)
def test_a_hostile_manifest_is_refused_before_anything_is_written(
    tmp_path: Path, files: Any, reason: str
) -> None:
    write_backup(tmp_path / "store", files(tmp_path))
    volumes = RecordingVolumes()

    with pytest.raises(BackupCorrupted, match="^backup pos-20260101T020000Z: ") as refused:
        run_restore(tmp_path, volumes)

    assert reason in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not outside(tmp_path).exists()
    assert not (tmp_path / "elsewhere").exists()
    assert volumes.stopped_for == [] and volumes.replaced == []
    assert not (tmp_path / "work" / "restore" / BACKUP).exists()  # staging is removed


def test_a_manifest_larger_than_4_mib_is_refused(tmp_path: Path) -> None:
    write_backup(tmp_path / "store", [entry(f"{VOLUME}.tar.gz")])
    manifest = tmp_path / "store" / PREFIX / BACKUP / MANIFEST
    manifest.write_text(" " * (5 * 1024 * 1024) + manifest.read_text())
    with pytest.raises(BackupCorrupted, match="larger than 4194304 bytes"):
        run_restore(tmp_path, RecordingVolumes())


def test_a_plain_backup_still_restores(tmp_path: Path) -> None:
    write_backup(tmp_path / "store", [entry(f"{VOLUME}.tar.gz")])
    volumes = RecordingVolumes()

    done = run_restore(tmp_path, volumes)

    assert done.volumes == (VOLUME,)
    assert volumes.stopped_for == ["pos"]
    ((volume, staged),) = volumes.replaced
    assert volume == VOLUME
    assert staged.parent == tmp_path / "work" / "restore" / BACKUP


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=3))
def test_any_manifest_names_restore_only_inside_staging(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_backup(root / "store", [entry(name) for name in names])
        before = {p for p in root.rglob("*")}
        volumes = RecordingVolumes()
        try:
            run_restore(root, volumes)
            restored = True
        except RestoreError:
            restored = False
        if restored:
            assert names == [f"{VOLUME}.tar.gz"]
        for _, staged in volumes.replaced:
            assert staged.parent == root / "work" / "restore" / BACKUP
        created = {p for p in root.rglob("*")} - before
        assert all(p.is_relative_to(root / "work") for p in created), created


KEYS = ["a//b", "a/./b", "/etc/passwd", "a/../../b", "", ".", "a/", "prefix/id//etc/x", "a\nb"]


@pytest.mark.parametrize("key", KEYS)
def test_a_key_with_an_empty_or_dot_segment_is_refused(tmp_path: Path, key: str) -> None:
    location = DirectoryLocation(name="nas", root=tmp_path / "store")
    with pytest.raises(LocationInvalid, match="is not a relative key of plain segments"):
        location.put_bytes(key, b"x")
    with pytest.raises(LocationInvalid):
        location.get_bytes(key, limit=10)
    assert not (tmp_path / "store").exists()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab./\\-_\n \x00"), max_size=20))
def test_a_key_that_is_accepted_stays_inside_its_location(key: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "store"
        location = DirectoryLocation(name="nas", root=root)
        try:
            location.put_bytes(key, b"x")
        except LocationInvalid:
            return
        except Exception as e:  # the file system's own refusal is mapped, never raw
            raise AssertionError(f"{key!r}: {type(e).__name__}") from e
        written = [p for p in Path(folder).rglob("*") if p.is_file()]
        assert written and all(p.resolve().is_relative_to(root.resolve()) for p in written)
        assert all(segment not in ("", ".", "..") for segment in key.split("/"))


def test_a_location_may_only_name_edgefleet_variables(tmp_path: Path) -> None:
    location = BackupLocation(
        name="s3", provider="s3", bucket="b", endpoint="https://s3.test", credentialsRef="AWS"
    )
    with pytest.raises(LocationInvalid, match="credentialsRef must name EDGEFLEET_ variables"):
        open_location(
            location,
            environ={"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key"},
            ca_dir=tmp_path,
        )


def test_validate_refuses_a_credentials_ref_without_the_prefix(
    fleet: FleetFiles, tmp_path: Path
) -> None:
    fleet.edit("fleet.yaml", "credentialsRef: EDGEFLEET_ACME_S3", "credentialsRef: AWS")
    line = fleet.line_of("fleet.yaml", "credentialsRef: AWS")
    done = run_measured(edgefleet("validate", str(fleet.root)), work=tmp_path)
    assert done.code == 1
    assert (
        f"fleet.yaml:{line}: spec.backupLocations[1].credentialsRef: credentialsRef must name "
        "EDGEFLEET_-prefixed variables, like EDGEFLEET_S3 (got 'AWS')"
    ) in done.out, done.out
