"""End-to-end tier: the whole GitOps loop. Provides ``loop``: a fleet repository, ``edgefleet
serve`` on 127.0.0.1 and an agent process per appliance on the session's Docker engine, all
stopped and removed when the test ends. Parametrized indirectly, ``loop`` takes
``{"serve": [flags]}`` (more ``serve`` flags) and ``{"signed": True}`` (every commit signed
by an SSH key made here, and ``serve --allowed-signers`` trusting only it)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.appliances import RUN_LABEL, remove_labelled
from tests.support.engine import Engine
from tests.support.fleet import FleetFiles, write_base_fleet
from tests.support.git import git
from tests.support.gitops import BOOTSTRAP, Loop, free_port, healthy, wait_for
from tests.support.keys import allowed_signers, sign_commits, signing_key, ssh_key
from tests.support.operators import write_token_file
from tests.support.services import unavailable


def signed_by(work: Path, fleet: FleetFiles) -> Path:
    """Sign the fleet's commits with a key made here, the only allowed signer."""
    if shutil.which("ssh-keygen") is None:
        unavailable("ssh-keygen is not installed (Debian's openssh-client)")
    key = ssh_key(work / "keys", "release-manager", "rm@acme.test")
    allowed_signers(work / "keys" / "allowed_signers", ("rm@acme.test", key))
    sign_commits(fleet.root, key)
    return key


@pytest.fixture
def loop(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    engine: Engine,
    docker_client: docker.DockerClient,
    node_image: str,
    run_id: str,
) -> Iterator[Loop]:
    options: dict[str, Any] = getattr(request, "param", {})
    work = tmp_path / "work"
    work.mkdir()
    flags: list[str] = list(options.get("serve", []))
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
    if options.get("signed"):
        key = signed_by(work, fleet)
        flags += ["--allowed-signers", str(key.parent / "allowed_signers")]
    git(fleet.root, "add", "-A")
    git(fleet.root, "commit", "-qm", "the fleet")
    (work / "bootstrap").write_text(BOOTSTRAP)
    write_token_file(work / "operators")
    signing_key(work)
    port = free_port()
    found = Loop(fleet, f"http://127.0.0.1:{port}", docker_client, work, node_image, run_id, engine)
    found.start(
        [sys.executable, "-m", "reconciler", "serve", str(fleet.root),
         "--listen", f"127.0.0.1:{port}", "--db", f"sqlite:///{work / 'reconciler.db'}",
         "--tick-interval", "0.5", "--operator-token-file", str(work / "operators"),
         "--signing-key", str(work / "signing.pem"),
         *(flags if "--no-bootstrap-token" in flags else
           ["--bootstrap-token-file", str(work / "bootstrap"), *flags])],
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
