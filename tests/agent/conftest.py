"""Agent tier: the agent against the real Docker engine of this machine.

Provides, once per session: ``engine`` (the engine that answers at DOCKER_HOST or the
default socket, or else one started for the session from Debian's ``docker.io`` and stopped
at its end; the tests skip with the reason when neither is possible), ``docker_client`` and
``node_image`` (a busybox image built locally that stands in for k3s, because no image can
be pulled). Per test: ``agent``, an appliance with its own ID, data folder and name prefix
(``agent.name("pos")``). Everything a session creates carries the label
``edgefleet.test-run=<id>`` and is removed at the end of its test and again at the end of
the session, with the image. Tests that need no engine (admission, planning) live here too
and simply do not ask for these fixtures.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.agent.engine import Engine
from tests.agent.harness import Agent


class TestAgent(Agent):
    __test__ = False

    def name(self, suffix: str) -> str:
        """A cluster name unique to this test."""
        return f"{self.appliance}-{suffix}"


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
