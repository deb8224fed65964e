"""Day-2 tier: schedules, patching, scans, backups and restores against the session's Docker
engine. Provides, once per session, ``images_built`` (a node image with a stand-in package
manager, one stand-in image per scan tool) and ``s3`` (moto's S3 server over TLS); per test,
``site``, one appliance with its day-2 collaborators, cleaned up when the test ends."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from agent.contract import SCAN_TOOLS
from tests.daytwo import images, s3server
from tests.support.appliances import RUN_LABEL, Agent, remove_labelled
from tests.support.daytwo import Images, Site
from tests.support.engine import Engine, EngineUnavailable
from tests.support.services import unavailable


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
        unavailable(str(e))
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
