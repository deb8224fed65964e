"""Offline mode end to end: a signed bundle carried to a site with no link to the reconciler,
applied by the agent on a real Docker engine, its status file imported back; a bundle for
another appliance, or older than the last one applied, is refused with nothing applied."""

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


def make_bundle(
    fleet: FleetFiles, work: Path, *, appliance: str = APPLIANCE, name: str = "store-1.bundle"
) -> Path:
    """An appliance's desired state, signed with the key the fixture made."""
    key, out = str(work / "key.pem"), work / name
    made = edgefleet(
        "bundle", str(fleet.root), "--appliance", appliance, "--key", key, "--out", str(out)
    )
    assert made.returncode == 0, made.stderr
    return out


def run_bundle(work: Path, bundle: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return agent(
        "run", "--config", str(work / "agent.yaml"), "--bundle", str(bundle),
        "--bundle-key", str(work / "key.pem.pub"), "--status-out", str(work / "status.json"),
        *extra,
    )  # fmt: skip


def nodes(client: docker.DockerClient) -> dict[str, str]:
    """Node name → image of the appliance's containers."""
    found = client.containers.list(all=True, filters={"label": f"edgefleet.appliance={APPLIANCE}"})
    return {c.labels["edgefleet.node"]: c.attrs["Config"]["Image"] for c in found}


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


def test_a_bundle_for_another_appliance_is_refused_and_nothing_applied(
    offline: tuple[FleetFiles, Path], docker_client: docker.DockerClient
) -> None:
    fleet, work = offline
    other = make_bundle(fleet, work, appliance="restaurant-7-a", name="restaurant.bundle")
    ran = run_bundle(work, other)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines() == [
        "edgefleet-agent: bundle refused: the bundle is for appliance 'restaurant-7-a', "
        f"this appliance is '{APPLIANCE}'"
    ]
    assert not docker_client.containers.list(all=True, filters={"label": "edgefleet.appliance"})
    assert not (work / "status.json").exists()


def test_an_older_bundle_is_refused_and_a_new_bundle_of_the_old_revision_reverts(
    offline: tuple[FleetFiles, Path], docker_client: docker.DockerClient, node_image: str
) -> None:
    fleet, work = offline
    old = make_bundle(fleet, work, name="old.bundle")
    assert run_bundle(work, old).returncode == 0
    assert nodes(docker_client) == {"pos-main-1": node_image}

    # the next revision: the node runs another image (a tag of the same one)
    docker_client.images.get(node_image).tag(f"{node_image}-next")
    try:
        downgrades(fleet, work, docker_client, node_image, old)
    finally:
        docker_client.images.remove(f"{node_image}-next", force=True)


def downgrades(
    fleet: FleetFiles, work: Path, docker_client: docker.DockerClient, node_image: str, old: Path
) -> None:
    fleet.edit("sites/store-1/clusters/pos.yaml", f"nodeImage: {node_image}\n",
               f"nodeImage: {node_image}-next\n")  # fmt: skip
    new = make_bundle(fleet, work, name="new.bundle")
    ran = run_bundle(work, new)
    assert ran.returncode == 0, ran.stderr
    assert nodes(docker_client) == {"pos-main-1": f"{node_image}-next"}

    # the old bundle, replayed, is refused and changes nothing
    replayed = run_bundle(work, old)
    assert replayed.returncode == 1
    (line,) = replayed.stderr.strip().splitlines()
    assert line.startswith("edgefleet-agent: bundle refused: the bundle (sequence ")
    assert "is older than the one applied last" in line
    assert nodes(docker_client) == {"pos-main-1": f"{node_image}-next"}

    # a revert is a new bundle of the old revision
    fleet.edit("sites/store-1/clusters/pos.yaml", f"nodeImage: {node_image}-next\n",
               f"nodeImage: {node_image}\n")  # fmt: skip
    revert = make_bundle(fleet, work, name="revert.bundle")
    assert run_bundle(work, revert).returncode == 0
    assert nodes(docker_client) == {"pos-main-1": node_image}

    # and going back without a new bundle needs the operator to say so
    assert run_bundle(work, new).returncode == 1
    assert run_bundle(work, new, "--allow-downgrade").returncode == 0
    assert nodes(docker_client) == {"pos-main-1": f"{node_image}-next"}
