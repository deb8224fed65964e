"""End-to-end tier: the whole GitOps loop with real parts.

Provides ``loop``: a fleet repository made with the ``git`` command, ``edgefleet serve`` on a
free port of 127.0.0.1 (SQLite, its output in a log file), and an agent process per appliance
(``edgefleet-agent run``) against the session's Docker engine with the locally built node
image (tests/conftest.py). Everything started is stopped, and every container, volume and
network removed, when the test ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import httpx
import pytest

from agent.config import AgentConfig
from tests.agent.engine import Engine
from tests.agent.harness import RUN_LABEL, remove_labelled
from tests.integration.conftest import git
from tests.support.fleet import FleetFiles, write_base_fleet
from tests.support.operators import VIEWER, write_token_file

BOOTSTRAP = "e2e-bootstrap-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Loop:
    fleet: FleetFiles
    url: str
    client: docker.DockerClient
    work: Path
    image: str
    run_id: str
    engine: Engine
    processes: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    # -- processes ------------------------------------------------------------------------

    def start(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        out = log.open("wb")
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        out.close()
        self.processes.append((process, log))

    def start_agent(self, appliance: str, *, libvirt_uri: str | None = None) -> None:
        """An agent process for ``appliance``: Docker nodes, or virtual machines on the
        libvirt connection ``libvirt_uri`` (software emulation: KVM boots no guest in the
        virtual machines these tests run on)."""
        data = self.work / appliance
        config = AgentConfig(
            isVirtual=libvirt_uri is not None,
            libvirtUri=libvirt_uri,
            libvirtDomainType="qemu",
            libvirtCpuMode=None,
            applianceId=appliance,
            ip="127.0.0.1",
            apiUrl=self.url,
            tokenFile=str(data / "token"),
            dataDir=str(data),
            dockerUrl=self.engine.base_url,
            defaultImage=self.image,
            privileged=False,
            serverCommand=None,  # the stand-in node image runs its own command
            agentCommand=None,
            pull="never",
            labels={RUN_LABEL: self.run_id},
        )
        config.save(data / "agent.yaml")
        self.start(
            [sys.executable, "-c", "import sys; from agent.cli import main; sys.exit(main())",
             "run", "--config", str(data / "agent.yaml"), "--wait", "5"],
            self.work / f"{appliance}.log",
            env={"EDGEFLEET_REGISTRATION_TOKEN": BOOTSTRAP},
        )  # fmt: skip

    def stop(self) -> None:
        for process, _ in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, _ in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
                         for _, log in self.processes)  # fmt: skip

    # -- git ------------------------------------------------------------------------------

    def git(self, *args: str) -> str:
        return git(self.fleet.root, *args)

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-qm", message)

    # -- what runs ------------------------------------------------------------------------

    def containers(self, appliance: str) -> dict[str, str]:
        """Node name → container name, for the appliance's running containers."""
        found = self.client.containers.list(
            filters={"label": [f"edgefleet.appliance={appliance}", f"{RUN_LABEL}={self.run_id}"]}
        )
        return {c.labels["edgefleet.node"]: c.name for c in found if c.status == "running"}

    def networks(self, appliance: str) -> list[str]:
        return [n.name for n in self.client.networks.list(
            filters={"label": [f"edgefleet.appliance={appliance}"]})]  # fmt: skip

    def fleet_status(self) -> dict[str, object]:
        answer = httpx.get(f"{self.url}/v1/fleet", timeout=5, headers=VIEWER)
        data: dict[str, object] = answer.json()
        return data

    def site_status(self, site: str) -> dict[str, object]:
        answer = httpx.get(f"{self.url}/v1/sites/{site}", timeout=5, headers=VIEWER)
        data: dict[str, object] = answer.json()
        return data


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
        wait_for(lambda: _healthy(found.url), 30, "the reconciler to answer")
        yield found
    finally:
        try:
            print(json.dumps(found.fleet_status(), indent=1)[:6000])
        except Exception as e:  # the status is only there to explain a failure
            print(f"no fleet status: {e}")
        found.stop()
        remove_labelled(docker_client, f"{RUN_LABEL}={run_id}")
        print(found.logs())


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def plan_json(loop: Loop, base: str, head: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", str(loop.fleet.root), "--base", base,
         "--head", head, "--format", "json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout)
    return result
