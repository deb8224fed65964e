"""`edgefleet serve` as a process for the tests: a fleet committed to a git repository, the
command started on a free port of 127.0.0.1 with its log in a file, and stopped at the end."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.integration.conftest import git
from tests.support.fleet import FleetFiles
from tests.support.operators import VIEWER
from tests.support.serving import serve_flags

from .agents import Agent

SECRET = "push-secret-0123456789"
STORE = "sites/store-1/clusters/pos.yaml"


@dataclass
class Served:
    fleet: FleetFiles
    work: Path
    port: int
    repo: str
    process: subprocess.Popen[bytes] | None = None
    agents: list[Agent] | None = None
    ca: Path | None = None  # served over TLS with a certificate from this CA

    def agent(self, appliance: str) -> Agent:
        """An HTTP client playing ``appliance``'s agent, registered; closed at the end."""
        found = Agent(self.url, appliance)
        assert found.register().status_code == 200
        self.agents = [*(self.agents or []), found]
        return found

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.port}"

    def start(
        self, *extra: str, env: dict[str, str] | None = None, https_ca: Path | None = None
    ) -> None:
        self.ca = https_ca
        with (self.work / "serve.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "serve", self.repo, *extra],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                verify = ssl.create_default_context(cafile=str(self.ca)) if self.ca else True
                answer = httpx.get(f"{self.url}/v1/fleet", timeout=1, verify=verify, headers=VIEWER)
                if answer.json().get("revision"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError("serve did not publish a revision:\n" + self.log())

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        for agent in self.agents or []:
            agent.close()
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)

    def log(self) -> str:
        return (self.work / "serve.log").read_text(errors="replace")[-4000:]

    def commit(self, message: str) -> None:
        git(self.fleet.root, "add", "-A")
        git(self.fleet.root, "commit", "-qm", message)

    def fleet_status(self) -> dict[str, object]:
        answer = httpx.get(f"{self.url}/v1/fleet", timeout=5, headers=VIEWER)
        found: dict[str, object] = answer.json()
        return found


def args(served: Served) -> list[str]:
    return serve_flags(served.work, served.port)
