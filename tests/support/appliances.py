"""The agent as the tests drive it: apply states through the real Docker driver, then look at
what exists with the docker SDK, as an operator would with ``docker ps`` and ``docker exec``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container

from agent.apply.admission import InstalledNetwork
from agent.apply.applying import apply_state
from agent.apply.inventory import Inventory, Record
from agent.apply.passes import ApplyResult, Progress
from agent.clocks import SystemClock
from agent.config import AGE_KEY_NAME
from agent.contract import DesiredState
from agent.drivers.docker.driving import (
    APPLIANCE,
    DockerDriver,
    DockerSettings,
)

RUN_LABEL = "edgefleet.test-run"
MANIFESTS = "/var/lib/rancher/k3s/server/manifests"
K3S_DATA = "/var/lib/rancher/k3s"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Agent:
    """One appliance's agent: its data folder, its driver settings and its engine."""

    appliance: str
    data_dir: Path
    client: docker.DockerClient
    base_url: str
    image: str
    run_id: str
    started: datetime = field(default_factory=datetime.now)

    def settings(self, **changes: Any) -> DockerSettings:
        options: dict[str, Any] = {
            "default_image": self.image,
            # the stand-in image runs its own command (the k3s image would get server/agent)
            "server_command": None,
            "agent_command": None,
            # privileged containers need capabilities some hosts withhold; the stand-in
            # node does not need them
            "privileged": False,
            "pull": "never",  # nothing may be pulled from a registry in the tests
            "extra_labels": {RUN_LABEL: self.run_id},
        }
        options.update(changes)
        return DockerSettings(**options)

    def apply(
        self,
        state: DesiredState,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        network: InstalledNetwork | None = None,
        **settings: Any,
    ) -> ApplyResult:
        driver = DockerDriver(client=self.client, settings=self.settings(**settings))
        with Inventory.open(self.data_dir) as inventory:
            return apply_state(
                state,
                driver=driver,
                inventory=inventory,
                clock=SystemClock(),
                on_progress=on_progress,
                start_timeout=20,
                age_key=self.data_dir / AGE_KEY_NAME,
                network=network,
            )

    def apply_and_kill(self, state: DesiredState, *, pause_at: str, stage: str) -> None:
        """Apply in another process and ``kill -9`` it when ``pause_at`` reaches ``stage``."""
        work = self.data_dir.parent
        (work / "state.json").write_bytes(state.canonical_json())
        marker = work / "paused"
        marker.unlink(missing_ok=True)
        with open(work / "interrupted.log", "wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.agent.interrupted",
                    f"--state={work / 'state.json'}",
                    f"--data-dir={self.data_dir}",
                    f"--docker-url={self.base_url}",
                    f"--image={self.image}",
                    f"--run-label={RUN_LABEL}={self.run_id}",
                    f"--pause-at={pause_at}",
                    f"--stage={stage}",
                    f"--marker={marker}",
                ],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 30
            while not marker.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    output = (work / "interrupted.log").read_text(errors="replace")
                    raise AssertionError(f"never reached {pause_at} {stage}:\n{output}")
                time.sleep(0.05)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    def records(self) -> tuple[Record, ...]:
        with Inventory.open(self.data_dir) as inventory:
            return inventory.records()

    # -- what exists -----------------------------------------------------------------------

    def containers(self, cluster: str | None = None) -> list[Container]:
        labels = [f"{APPLIANCE}={self.appliance}"]
        if cluster is not None:
            labels.append(f"edgefleet.cluster={cluster}")
        found = self.client.containers.list(all=True, filters={"label": labels})
        return sorted(found, key=lambda c: c.name or "")

    def container_names(self, cluster: str | None = None) -> list[str]:
        return [c.name or "" for c in self.containers(cluster)]

    def data_volume(self, container: Container) -> str:
        """The volume a node container holds its k3s data on."""
        (found,) = [
            m["Name"] for m in container.attrs["Mounts"] if m["Destination"] == K3S_DATA
        ]
        return str(found)

    def data_volumes(self, cluster: str | None = None) -> list[str]:
        """The data volumes of the appliance's node containers, sorted."""
        return sorted(self.data_volume(c) for c in self.containers(cluster))

    def volume_names(self) -> list[str]:
        found = self.client.volumes.list(filters={"label": [f"{APPLIANCE}={self.appliance}"]})
        return sorted(v.name for v in found)

    def network_names(self) -> list[str]:
        found = self.client.networks.list(filters={"label": [f"{APPLIANCE}={self.appliance}"]})
        return sorted(str(n.name) for n in found)

    def node_container(self, node: str) -> Container:
        (found,) = [c for c in self.containers() if c.labels.get("edgefleet.node") == node]
        return found

    def read(self, container: Container, path: str) -> str:
        result = container.exec_run(["cat", path])
        assert result.exit_code == 0, result.output
        assert isinstance(result.output, bytes)
        return result.output.decode()

    def listing(self, container: Container, folder: str = MANIFESTS) -> list[str]:
        result = container.exec_run(["ls", "-1", folder])
        assert result.exit_code == 0, result.output
        assert isinstance(result.output, bytes)
        return sorted(result.output.decode().split())

    def container_events(self, cluster: str, since: datetime) -> list[tuple[str, str]]:
        """(action, container name) as the engine logged them, oldest first."""
        stream = self.client.events(
            # the engine counts whole seconds here: ask wider, then filter to the nanosecond
            since=since - timedelta(seconds=1),
            until=datetime.now() + timedelta(seconds=1),
            filters={"type": "container", "label": [f"edgefleet.cluster={cluster}"]},
            decode=True,
        )
        try:
            return [
                (event["Action"], event["Actor"]["Attributes"]["name"])
                for event in stream
                if event["Action"] in ("create", "start", "destroy")
                and event["timeNano"] >= since.timestamp() * 1e9
            ]
        finally:
            stream.close()

    def remove_everything(self) -> None:
        remove_labelled(self.client, f"{APPLIANCE}={self.appliance}")


class TestAgent(Agent):
    """An appliance of one test: cluster names are its own (``agent.name("pos")``)."""

    __test__ = False

    def name(self, suffix: str) -> str:
        """A cluster name unique to this test."""
        return f"{self.appliance}-{suffix}"


def remove_labelled(client: docker.DockerClient, label: str) -> None:
    for container in client.containers.list(all=True, filters={"label": [label]}):
        container.remove(force=True)
    for volume in client.volumes.list(filters={"label": [label]}):
        volume.remove(force=True)
    for network in client.networks.list(filters={"label": [label]}):
        network.remove()
