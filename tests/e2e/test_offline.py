"""Offline mode end to end: a signed bundle carried to a site with no link to the reconciler,
applied by the agent on a real Docker engine, its status file imported back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from agent.config import AgentConfig
from reconciler.store import Store
from tests.support.appliances import RUN_LABEL, remove_labelled
from tests.support.engine import Engine
from tests.support.fleet import FleetFiles, write_base_fleet

APPLIANCE = "store-1-a"


def edgefleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, timeout=120
    )


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from agent.cli import main; sys.exit(main())", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def offline(
    tmp_path: Path,
    engine: Engine,
    docker_client: docker.DockerClient,
    node_image: str,
    run_id: str,
) -> tuple[FleetFiles, Path]:
    fleet = FleetFiles(tmp_path / "fleet")
    write_base_fleet(fleet)
    fleet.edit(
        "sites/store-1/clusters/pos.yaml",
        "        maxPods: 80\n",
        f"        maxPods: 80\n        nodeImage: {node_image}\n",
    )
    config = AgentConfig(
        applianceId=APPLIANCE,
        ip="192.168.1.10",
        mode="offline",
        dataDir=str(tmp_path / "data"),
        dockerUrl=engine.base_url,
        defaultImage=node_image,
        privileged=False,
        serverCommand=None,
        agentCommand=None,
        pull="never",
        labels={RUN_LABEL: run_id},
    )
    config.save(tmp_path / "agent.yaml")
    assert edgefleet("keygen", "--out", str(tmp_path / "key.pem")).returncode == 0
    yield fleet, tmp_path
    remove_labelled(docker_client, f"{RUN_LABEL}={run_id}")


def make_bundle(fleet: FleetFiles, work: Path) -> None:
    """The store's desired state, signed with the key the fixture made."""
    key, out = str(work / "key.pem"), str(work / "store-1.bundle")
    made = edgefleet(
        "bundle", str(fleet.root), "--appliance", APPLIANCE, "--key", key, "--out", out
    )
    assert made.returncode == 0, made.stderr


def test_bundle_applied_offline_and_status_imported(
    offline: tuple[FleetFiles, Path], docker_client: docker.DockerClient
) -> None:
    fleet, work = offline
    make_bundle(fleet, work)
    ran = agent(
        "run",
        "--config",
        str(work / "agent.yaml"),
        "--bundle",
        str(work / "store-1.bundle"),
        "--bundle-key",
        str(work / "key.pem.pub"),
        "--status-out",
        str(work / "status.json"),
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    running = docker_client.containers.list(filters={"label": f"edgefleet.appliance={APPLIANCE}"})
    assert [c.labels["edgefleet.node"] for c in running] == ["pos-main-1"]
    status = json.loads((work / "status.json").read_text())
    assert status["appliance"] == APPLIANCE
    assert status["report"]["health"] == "healthy"

    db = f"sqlite:///{work / 'reconciler.db'}"
    imported = edgefleet("status", "import", str(work / "status.json"), "--db", db)
    assert imported.returncode == 0, imported.stderr
    with Store(db).read() as tx:
        record = tx.reports.get(APPLIANCE)
    assert record is not None
    assert record.applied_digest == status["report"]["appliedDigest"]


def test_tampered_bundle_is_refused_and_nothing_applied(
    offline: tuple[FleetFiles, Path], docker_client: docker.DockerClient
) -> None:
    fleet, work = offline
    make_bundle(fleet, work)
    bundle = json.loads((work / "store-1.bundle").read_text())
    bundle["state"]["clusters"][0]["nodes"][0]["workerCapable"] = False
    (work / "store-1.bundle").write_text(json.dumps(bundle))
    ran = agent(
        "run",
        "--config",
        str(work / "agent.yaml"),
        "--bundle",
        str(work / "store-1.bundle"),
        "--bundle-key",
        str(work / "key.pem.pub"),
    )
    assert ran.returncode == 1
    assert "bundle refused: bad signature" in ran.stderr
    assert not docker_client.containers.list(
        all=True, filters={"label": f"edgefleet.appliance={APPLIANCE}"}
    )
