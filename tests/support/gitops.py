"""The whole GitOps loop as the end-to-end tests drive it: a fleet repository, ``edgefleet
serve`` and one ``edgefleet-agent run`` process per appliance, and what they show."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import httpx

from agent.config import AgentConfig
from tests.support.appliances import RUN_LABEL
from tests.support.engine import Engine
from tests.support.fleet import FleetFiles
from tests.support.git import git
from tests.support.operators import ADMIN_TOKEN, VIEWER

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

    def start_agent(
        self,
        appliance: str,
        *,
        libvirt_uri: str | None = None,
        http_proxy: str | None = None,
        registration_token: str | None = BOOTSTRAP,
        config: AgentConfig | None = None,
    ) -> None:
        """An agent process for ``appliance``: Docker nodes, or virtual machines on the
        libvirt connection ``libvirt_uri`` (software emulation: KVM boots no guest in the
        virtual machines these tests run on); through ``http_proxy`` if given; registering
        itself with ``registration_token`` when it has no token of its own; with
        ``config`` instead of :meth:`agent_config`'s when given."""
        data = self.work / appliance
        if config is None:
            config = self.agent_config(appliance, libvirt_uri=libvirt_uri, http_proxy=http_proxy)
        config.save(data / "agent.yaml")
        self.start(
            [sys.executable, "-c", "import sys; from agent.cli import main; sys.exit(main())",
             "run", "--config", str(data / "agent.yaml"), "--wait", "5"],
            self.work / f"{appliance}.log",
            env={"EDGEFLEET_REGISTRATION_TOKEN": registration_token or ""},
        )  # fmt: skip

    def agent_config(
        self, appliance: str, *, libvirt_uri: str | None = None, http_proxy: str | None = None
    ) -> AgentConfig:
        """The configuration of ``appliance``'s agent on this machine's engine."""
        data = self.work / appliance
        return AgentConfig(
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
            serverKey=str(self.work / "signing.pem.pub"),
            insecureHttp=True,  # the reconciler serves http on 127.0.0.1 here
            httpProxy=http_proxy,
        )

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


def edgefleet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The ``edgefleet`` command, as an admin (the tests' admin token)."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "EDGEFLEET_TOKEN": ADMIN_TOKEN, **(env or {})},
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def agent_command(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``edgefleet-agent`` or ``edge-installer`` command (``args[0]``: its module)."""
    module, *rest = args
    return subprocess.run(
        [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())",
         *rest],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def healthy(url: str) -> bool:
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


def parse_join(text: str) -> dict[str, str]:
    """The keys of a node's join drop-in (``10-join.yaml``), their JSON-quoted values bare."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(": ")
            found[key] = value.strip('"')
    return found


def token_revoked(loop: Loop, token: str) -> bool:
    """Whether the reconciler refuses an agent's ``token`` now."""
    answer = httpx.get(
        f"{loop.url}/v1/desired", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    return answer.status_code == 401
