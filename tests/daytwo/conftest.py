"""Day-2 tier: schedules, patching, scans, backups and restore of the agent.

Uses the session's Docker engine (tests/conftest.py). Provides, once per session:
``images`` (a node image with a stand-in package manager and one
image per scan tool that prints the real tool's report format, all built here from busybox,
see ``images.py``) and ``s3`` (moto's S3 server on 127.0.0.1 over TLS with checked
signatures, see ``s3server.py``). Per test: ``site``, an appliance with its own ID and data
folder, applying states through the real Docker driver (``tests.agent.harness.Agent``) and
handing out the day-2 collaborators (``DockerNodes``, ``DockerVolumes``, ``Operations``).
Everything a test creates is removed at its end (containers, volumes, networks by label; the
data folder with ``tmp_path``); the images and the server at the end of the session. The
schedule, window and report tests need none of this and use a controlled clock only.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from agent.clocks import SystemClock
from agent.contract import SCAN_TOOLS, ClusterState, DesiredState, MaintenanceWindow, Schedule
from agent.daytwo.operations import DayTwoSettings, Operations
from agent.daytwo.patching import PatchSettings
from agent.daytwo.scans.scanning import ScanSettings, ScanTool, default_tools
from agent.drivers.docker.datavolumes import DockerVolumes
from agent.drivers.docker.nodes import DAYTWO, DockerNodes
from tests.agent.engine import Engine, EngineUnavailable
from tests.agent.harness import RUN_LABEL, Agent, remove_labelled
from tests.agent.states import cluster, state
from tests.daytwo import images, s3server

PATCH = PatchSettings(command=("/usr/sbin/pkg", "upgrade"), timeout=30, reboot_timeout=30)


@dataclass(frozen=True)
class Images:
    node: str
    tools: dict[str, str]  # scan type -> image


@pytest.fixture(scope="session")
def images_built(docker_client: docker.DockerClient, run_id: str) -> Iterator[Images]:
    tags: list[str] = []
    try:
        tags.append(images.node_image(docker_client, f"edgefleet-daytwo-node:{run_id}", {}))
        tools = {}
        for scan, tool in SCAN_TOOLS.items():
            tools[scan] = images.tool_image(docker_client, tool, f"daytwo-{tool}:{run_id}", {})
            tags.append(tools[scan])
    except EngineUnavailable as e:
        pytest.skip(str(e))
    try:
        yield Images(tags[0], tools)
    finally:
        remove_labelled(docker_client, f"{RUN_LABEL}={run_id}")
        for tag in tags:
            docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="session")
def s3() -> Iterator[s3server.S3Server]:
    folder = Path(tempfile.mkdtemp(prefix="edgefleet-s3-"))
    server = s3server.start(folder)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Site:
    """One appliance: its agent (apply), its day-2 collaborators, and states to apply."""

    agent: Agent
    images: Images
    environ: dict[str, str] = field(default_factory=dict)

    @property
    def appliance(self) -> str:
        return self.agent.appliance

    def name(self, suffix: str) -> str:
        return f"{self.appliance}-{suffix}"

    def cluster(
        self,
        suffix: str,
        *,
        workers: int = 1,
        schedules: list[Schedule] | None = None,
        windows: list[MaintenanceWindow] | None = None,
        timezone: str = "UTC",
    ) -> ClusterState:
        base = cluster(self.name(suffix), appliance=self.appliance, workers=workers)
        return base.model_copy(
            update={
                "schedules": schedules or [],
                "maintenanceWindows": windows or [],
                "timezone": timezone,
            }
        )

    def state(self, *clusters: ClusterState) -> DesiredState:
        return state(self.appliance, *clusters)

    def apply(self, desired: DesiredState) -> None:
        result = self.agent.apply(desired)
        assert result.ok, result

    def nodes(self) -> DockerNodes:
        return DockerNodes(
            client=self.agent.client,
            appliance=self.appliance,
            clock=SystemClock(),
            labels={RUN_LABEL: self.agent.run_id},
        )

    def operations(self, **changes: Any) -> Operations:
        nodes = self.nodes()
        tools = {
            scan: ScanTool(tool.tool, self.images.tools[scan], tool.argv, tool.target)
            for scan, tool in default_tools().items()
        }
        settings = DayTwoSettings(
            patch=changes.pop("patch", PATCH),
            scans=changes.pop("scans", ScanSettings(tools=tools, timeout=60)),
        )
        return Operations(
            data_dir=self.agent.data_dir,
            host=nodes,
            volumes=DockerVolumes(nodes=nodes, start_timeout=30),
            clock=changes.pop("clock", SystemClock()),
            environ=self.environ,
            settings=settings,
            **changes,
        )

    def exec(self, node: str, *command: str) -> str:
        result = self.agent.node_container(node).exec_run(list(command))
        assert result.exit_code == 0, result.output
        assert isinstance(result.output, bytes)
        return result.output.decode()

    def remove_everything(self) -> None:
        self.agent.remove_everything()
        remove_labelled(self.agent.client, f"{DAYTWO}={self.appliance}")


@pytest.fixture
def site(
    engine: Engine,
    docker_client: docker.DockerClient,
    images_built: Images,
    run_id: str,
    tmp_path: Path,
) -> Iterator[Site]:
    agent = Agent(
        appliance=f"d{uuid.uuid4().hex[:6]}",
        data_dir=tmp_path / "agent-data",
        client=docker_client,
        base_url=engine.base_url,
        image=images_built.node,
        run_id=run_id,
    )
    found = Site(agent, images_built)
    try:
        yield found
    finally:
        found.remove_everything()
