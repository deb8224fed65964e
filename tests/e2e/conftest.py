"""End-to-end tier: the whole GitOps loop. Provides ``loop``: a fleet repository, ``edgefleet
serve`` on 127.0.0.1 and an agent process per appliance on the session's Docker engine, all
stopped and removed when the test ends."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.support.appliances import RUN_LABEL, remove_labelled
from tests.support.engine import Engine
from tests.support.fleet import FleetFiles, write_base_fleet
from tests.support.git import git
from tests.support.gitops import BOOTSTRAP, Loop, free_port, healthy, wait_for
from tests.support.operators import write_token_file


@pytest.fixture
def loop(
    tmp_path: Path,
    engine: Engine,
    docker_client: docker.DockerClient,
    node_image: str,
    run_id: str,
) -> Iterator[Loop]:
    fleet = FleetFiles(tmp_path / "fleet")
    write_base_fleet(fleet)
    fleet.edit("fleet.yaml", "soak: 10m", "soak: 2s")
    for site in ("store-1", "restaurant-7"):
        fleet.edit(
            f"sites/{site}/clusters/pos.yaml",
            "        maxPods: 80\n",
            f"        maxPods: 80\n        nodeImage: {node_image}\n",
        )
    # one Docker engine stands in for two appliances here, so their clusters need their own
    # names (on real appliances each has its own engine)
    kitchen = fleet.read("sites/restaurant-7/clusters/pos.yaml").replace(
        "name: pos", "name: kitchen"
    )
    fleet.remove("sites/restaurant-7/clusters/pos.yaml")
    fleet.write("sites/restaurant-7/clusters/kitchen.yaml", kitchen)
    git(fleet.root, "init", "-q", "-b", "main")
    git(fleet.root, "add", "-A")
    git(fleet.root, "commit", "-qm", "the fleet")
    work = tmp_path / "work"
    work.mkdir()
    (work / "bootstrap").write_text(BOOTSTRAP)
    write_token_file(work / "operators")
    port = free_port()
    found = Loop(fleet, f"http://127.0.0.1:{port}", docker_client, work, node_image, run_id, engine)
    found.start(
        [sys.executable, "-m", "reconciler", "serve", str(fleet.root),
         "--listen", f"127.0.0.1:{port}", "--db", f"sqlite:///{work / 'reconciler.db'}",
         "--bootstrap-token-file", str(work / "bootstrap"), "--tick-interval", "0.5",
         "--operator-token-file", str(work / "operators")],
        work / "reconciler.log",
    )  # fmt: skip
    try:
        wait_for(lambda: healthy(found.url), 30, "the reconciler to answer")
        yield found
    finally:
        try:
            print(json.dumps(found.fleet_status(), indent=1)[:6000])
        except Exception as e:  # the status is only there to explain a failure
            print(f"no fleet status: {e}")
        found.stop()
        remove_labelled(docker_client, f"{RUN_LABEL}={run_id}")
        print(found.logs())
