"""Agent tier: the agent against the session's Docker engine. Provides ``agent``, an appliance
of one test (its own ID, data folder and cluster names), whose containers, volumes and
networks are removed when the test ends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.support.appliances import TestAgent
from tests.support.engine import Engine


@pytest.fixture
def agent(
    engine: Engine, docker_client: docker.DockerClient, node_image: str, run_id: str, tmp_path: Path
) -> Iterator[TestAgent]:
    appliance = f"t{uuid.uuid4().hex[:6]}"
    found = TestAgent(
        appliance=appliance,
        data_dir=tmp_path / "agent-data",
        client=docker_client,
        base_url=engine.base_url,
        image=node_image,
        run_id=run_id,
    )
    try:
        yield found
    finally:
        found.remove_everything()
