"""Backups and restore against the real Docker driver: to a directory and to an S3-compatible
server on 127.0.0.1 (moto's server mode over TLS, see ``s3server.py`` for why), restored into
a fresh cluster and compared entry by entry and byte for byte; failures are reported as
failed; a corrupted or missing backup is refused before anything changes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.contract import BackupSchedule, Schedule
from agent.daytwo.backups.restoring import BackupCorrupted, BackupNotFound, RestoreError
from agent.daytwo.records import RunState
from tests.daytwo.s3server import S3Server
from tests.daytwo.volumes import tree, write_data
from tests.support.daytwo import Site


def backup_policy(location: dict[str, Any], *, prefix: str, expiry: int = 24) -> Schedule:
    return BackupSchedule(
        name="backup",
        cron="0 23 * * *",
        timezone="UTC",
        parameters={
            "location": location,
            "prefix": prefix,
            "expiryHours": expiry,
            "namespaces": ["pos", "kiosk"],
            "includeClusterResources": "auto",
        },
    )


def node_names(cluster: Any) -> list[str]:
    return [f"{cluster.name}-main-1"] + [n.name for n in cluster.nodes if n.role == "worker"]


def started(site: Site, nodes: list[str]) -> dict[str, tuple[str, str]]:
    found = {}
    for node in nodes:
        container = site.agent.node_container(node)
        found[node] = (container.status, str(container.attrs["State"]["StartedAt"]))
    return found


def paused_and_resumed(site: Site, cluster: str, since: datetime) -> list[tuple[str, str]]:
    stream = site.agent.client.events(
        since=since - timedelta(seconds=1),
        until=datetime.now() + timedelta(seconds=1),
        filters={"type": "container", "label": [f"edgefleet.cluster={cluster}"]},
        decode=True,
    )
    try:
        return sorted(
            (event["Action"], event["Actor"]["Attributes"]["edgefleet.node"])
            for event in stream
            if event["Action"] in ("pause", "unpause")
        )
    finally:
        stream.close()


def test_a_backup_to_a_directory_restores_into_a_fresh_cluster_byte_for_byte(
    site: Site, tmp_path: Path
) -> None:
    folder = tmp_path / "backups"
    location = {"name": "local-disk", "provider": "file", "path": str(folder)}
    source = site.cluster("pos", workers=1)
    prefix = f"site-1/{source.name}"
    source = source.model_copy(update={"schedules": [backup_policy(location, prefix=prefix)]})
    fresh = site.cluster("spare", workers=1)
    desired = site.state(source, fresh)
    site.apply(desired)
    control, worker = node_names(source)
    write_data(site, control, "a1")
    write_data(site, worker, "a2")
    # expired backups under the prefix: this cluster's goes, another cluster's stays
    for old in (f"{source.name}-20200101T000000Z", "other-20200101T000000Z"):
        (folder / prefix / old).mkdir(parents=True)
        (folder / prefix / old / "manifest.json").write_text("{}")
    operations = site.operations()
    since = datetime.now()

    (result,) = operations.run_now("backup", state=desired, cluster=source.name)

    assert result.state is RunState.DONE, result.error
    assert result.pruned == (f"{source.name}-20200101T000000Z",)
    assert sorted(p.name for p in (folder / prefix).iterdir()) == sorted(
        [result.id, "other-20200101T000000Z"]
    )
    assert paused_and_resumed(site, source.name, since) == [
        ("pause", control), ("pause", worker), ("unpause", control), ("unpause", worker)
    ]  # fmt: skip
    stored = folder / prefix / result.id
    manifest = json.loads((stored / "manifest.json").read_text())
    assert manifest["cluster"] == source.name
    assert manifest["prefix"] == prefix
    assert (manifest["expiryHours"], manifest["namespaces"]) == (24, ["pos", "kiosk"])
    assert manifest["includeClusterResources"] == "auto"
    assert [(f["node"], f["role"], f["path"]) for f in manifest["files"]] == [
        (control, "control-plane", "/var/lib/rancher/k3s"),
        (worker, "worker", "/var/lib/rancher/k3s"),
    ]
    for file in manifest["files"]:
        data = (stored / file["name"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (file["size"], file["sha256"])
    before = [tree(site, node) for node in (control, worker)]
    assert before[0]["k3s/server/db/state.db"][5] != before[1]["k3s/server/db/state.db"][5]

    restored = operations.restore(result.id, state=desired, cluster=fresh.name)

    assert (restored.source, restored.cluster) == (source.name, fresh.name)
    assert [tree(site, node) for node in node_names(fresh)] == before
    assert {status for status, _ in started(site, node_names(fresh)).values()} == {"running"}

    # and back into the cluster it was taken of, after its data changed
    site.exec(control, "sh", "-c", "cd /var/lib/rancher/k3s && rm -r storage && echo x > new")
    operations.restore(result.id, state=desired)

    assert [tree(site, node) for node in (control, worker)] == before
    status = operations.history.status(source.name)
    assert status.last_good_backup is not None and status.last_good_backup.id == result.id
    assert operations.history.status(source.name).last_restore.cluster == source.name


def test_a_backup_to_s3_restores_into_a_fresh_cluster_byte_for_byte(
    site: Site, s3: S3Server, tmp_path: Path
) -> None:
    bucket = f"backups-{site.appliance}"
    (tmp_path / "ca.pem").write_text(s3.ca_pem)
    client: Any = s3.client(ca_file=tmp_path / "ca.pem")
    client.create_bucket(Bucket=bucket)
    site.environ.update(
        EDGEFLEET_S3_ACCESS_KEY_ID=s3.access_key, EDGEFLEET_S3_SECRET_ACCESS_KEY=s3.secret_key
    )
    location = {
        "name": "site-s3", "provider": "s3", "bucket": bucket, "endpoint": s3.endpoint,
        "region": "us-east-1", "credentialsRef": "EDGEFLEET_S3", "caCert": s3.ca_pem,
    }  # fmt: skip
    source = site.cluster("pos", workers=0)
    source = source.model_copy(
        update={"schedules": [backup_policy(location, prefix=f"clusters/{source.name}")]}
    )
    fresh = site.cluster("spare", workers=0)
    desired = site.state(source, fresh)
    site.apply(desired)
    (control,) = node_names(source)
    write_data(site, control, "s1")
    operations = site.operations()
    try:
        (result,) = operations.run_now("backup", state=desired, cluster=source.name)

        assert result.state is RunState.DONE, result.error
        listed = client.list_objects_v2(Bucket=bucket)["Contents"]
        assert sorted(o["Key"] for o in listed) == [
            f"clusters/{source.name}/{result.id}/{f.name}" for f in result.files
        ] + [f"clusters/{source.name}/{result.id}/manifest.json"]
        before = tree(site, control)

        restored = operations.restore(result.id, state=desired, cluster=fresh.name)

        assert restored.cluster == fresh.name
        assert [tree(site, node) for node in node_names(fresh)] == [before]
    finally:
        for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)


def test_a_backup_that_cannot_be_stored_is_failed_never_done(
    site: Site, s3: S3Server, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    bucket = f"failures-{site.appliance}"
    (tmp_path / "ca.pem").write_text(s3.ca_pem)
    client: Any = s3.client(ca_file=tmp_path / "ca.pem")
    client.create_bucket(Bucket=bucket)

    def s3_location(ref: str, name: str = bucket) -> dict[str, Any]:
        return {
            "name": "site-s3", "provider": "s3", "bucket": name, "endpoint": s3.endpoint,
            "credentialsRef": ref, "caCert": s3.ca_pem,
        }  # fmt: skip

    site.environ.update(
        EDGEFLEET_GOOD_ACCESS_KEY_ID=s3.access_key, EDGEFLEET_GOOD_SECRET_ACCESS_KEY=s3.secret_key,
        EDGEFLEET_BAD_ACCESS_KEY_ID=s3.access_key, EDGEFLEET_BAD_SECRET_ACCESS_KEY="not-the-secret",
    )  # fmt: skip
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"name": "local-disk", "provider": "file", "path": str(tmp_path / "a-file" / "b")},
            "Not a directory",
        ),
        (s3_location("EDGEFLEET_BAD"), "access denied (SignatureDoesNotMatch)"),
        (
            s3_location("EDGEFLEET_UNSET"),
            "backup location site-s3: EDGEFLEET_UNSET_ACCESS_KEY_ID is not set",
        ),
        (s3_location("EDGEFLEET_GOOD", name="no-such-bucket"), "the bucket does not exist"),
        ({**s3_location("EDGEFLEET_GOOD"), "caCert": None}, "TLS certificate not trusted"),
    ]
    base = site.cluster("pos", workers=0)
    site.apply(site.state(base))
    operations = site.operations()
    try:
        for location, reason in cases:
            cluster = base.model_copy(update={"schedules": [backup_policy(location, prefix="p")]})
            desired = site.state(cluster)

            (result,) = operations.run_now("backup", state=desired, cluster=cluster.name)

            assert result.state is RunState.FAILED, location
            assert result.error is not None and reason in result.error, result.error
            assert "\n" not in result.error and "not-the-secret" not in result.error
            assert result.files == ()
        status = operations.history.status(base.name)
        assert status.last_backup is not None and status.last_backup.state is RunState.FAILED
        assert status.last_good_backup is None
        assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []
        assert started(site, node_names(base))[f"{base.name}-main-1"][0] == "running"
    finally:
        client.delete_bucket(Bucket=bucket)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _escape(path: Path, manifest: Path) -> None:
    """A well-formed, correctly checksummed archive with an entry outside data/."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("data/../etc/cron.d/x")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    path.write_bytes(gzip.compress(buffer.getvalue()))
    document = json.loads(manifest.read_text())
    for file in document["files"]:
        if file["name"] == path.name:
            file["size"] = path.stat().st_size
            file["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(document))


def test_a_corrupted_or_missing_backup_fails_restore_and_changes_nothing(
    site: Site, tmp_path: Path
) -> None:
    folder = tmp_path / "backups"
    location = {"name": "local-disk", "provider": "file", "path": str(folder)}
    source = site.cluster("pos", workers=1)
    source = source.model_copy(update={"schedules": [backup_policy(location, prefix="p")]})
    target = site.cluster("spare", workers=1)
    desired = site.state(source, target)
    site.apply(desired)
    operations = site.operations()
    (backup,) = operations.run_now("backup", state=desired, cluster=source.name)
    assert backup.state is RunState.DONE, backup.error
    stored = folder / "p" / backup.id
    pristine = tmp_path / "pristine"
    shutil.copytree(stored, pristine)
    control_file, worker_file = (stored / f.name for f in backup.files)
    manifest = stored / "manifest.json"
    for node in node_names(target):
        write_data(site, node, "t")
    before = ([tree(site, n) for n in node_names(target)], started(site, node_names(target)))
    bid = backup.id
    cases: list[tuple[str, Callable[[], None], type[RestoreError], str]] = [
        ("a flipped byte", lambda: _flip(control_file), BackupCorrupted,
         f"backup {bid}: {control_file.name} is corrupted (sha256 mismatch)"),
        ("a truncated file", lambda: worker_file.write_bytes(worker_file.read_bytes()[:100]),
         BackupCorrupted,
         f"backup {bid}: {worker_file.name} is corrupted (100 bytes, manifest says "
         f"{backup.files[1].size})"),
        ("a missing file", worker_file.unlink, BackupCorrupted,
         f"backup {bid}: {worker_file.name} is missing"),
        ("a garbled manifest", lambda: manifest.write_text('{"id": 1'), BackupCorrupted,
         f"backup {bid}: manifest.json is not valid: Invalid JSON"),
        ("an entry outside the volume", lambda: _escape(control_file, manifest), BackupCorrupted,
         f"backup {bid}: {control_file.name} holds 'data/../etc/cron.d/x' outside data/"),
        ("no manifest", manifest.unlink, BackupNotFound,
         f"backup {bid} not found (looked in local-disk:p)"),
    ]  # fmt: skip
    for case, damage, error, message in cases:
        damage()

        with pytest.raises(error) as raised:
            operations.restore(bid, state=desired, cluster=target.name)

        assert str(raised.value).startswith(message), (case, str(raised.value))
        assert "\n" not in str(raised.value)
        shutil.rmtree(stored)
        shutil.copytree(pristine, stored)

    with pytest.raises(BackupNotFound) as raised:
        operations.restore(f"{source.name}-20200101T000000Z", state=desired, cluster=target.name)
    assert str(raised.value) == (
        f"backup {source.name}-20200101T000000Z not found (looked in local-disk:p)"
    )
    after = ([tree(site, n) for n in node_names(target)], started(site, node_names(target)))
    assert after == before
    assert operations.history.status(target.name).last_restore is None


def test_the_operator_backs_up_and_restores_with_edgefleet_agent(
    site: Site, tmp_path: Path
) -> None:
    """``edgefleet-agent run-now backup`` and ``restore`` as an operator runs them on a
    containerized appliance: the agent's config, the last good state it keeps on disk."""
    folder = tmp_path / "backups"
    location = {"name": "local-disk", "provider": "file", "path": str(folder)}
    source = site.cluster("till", workers=0)
    source = source.model_copy(update={"schedules": [backup_policy(location, prefix="p")]})
    fresh = site.cluster("spare", workers=0)
    site.apply(site.state(source, fresh))
    (control,) = node_names(source)
    write_data(site, control, "c1")
    config = tmp_path / "agent.yaml"
    AgentConfig(
        applianceId=site.appliance,
        ip="127.0.0.1",
        dataDir=str(site.agent.data_dir),
        dockerUrl=site.agent.base_url,
    ).save(config)
    agent = [str(Path(sys.executable).with_name("edgefleet-agent"))]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*agent, *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    backup = run("run-now", "backup", "--cluster", source.name)

    assert backup.returncode == 0, backup.stderr
    (result,) = json.loads(backup.stdout)
    assert result["state"] == "done" and (folder / "p" / result["id"] / "manifest.json").exists()

    missing = run("restore", "--backup", f"{source.name}-20200101T000000Z")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr.startswith(f"edgefleet-agent: backup {source.name}-20200101T000000Z")
    assert "not found" in missing.stderr

    restored = run("restore", "--backup", result["id"], "--cluster", fresh.name)

    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["cluster"] == fresh.name
    assert tree(site, node_names(fresh)[0]) == tree(site, control)
