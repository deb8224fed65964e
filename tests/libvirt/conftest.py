"""Libvirt tier: the agent's libvirt driver against libvirt itself. Provides ``fast_agent``, an
appliance on libvirt's in-process ``test:///default`` driver, and, on the session's libvirtd,
``real_host`` (pools, a network, an image) and ``real_agent``, whose domains and volumes are
removed when the test ends; it boots the session's ``guest`` (tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from agent.drivers.libvirt import LibvirtSettings, StreamedContents
from tests.libvirt.harness import LibvirtAgent, MemoryContents
from tests.support.hosts import RealHost, prepare_test_host
from tests.support.libvirtd import Daemon, Guest


@pytest.fixture
def test_connection() -> Iterator[Any]:
    libvirt.registerErrorHandler(lambda context, error: None, None)
    connection = libvirt.open("test:///default")
    try:
        prepare_test_host(connection)
        yield connection
    finally:
        connection.close()  # the last connection gone, the test driver forgets everything


@pytest.fixture
def fast_agent(test_connection: Any, tmp_path: Path) -> LibvirtAgent:
    return LibvirtAgent(
        appliance=f"t{uuid.uuid4().hex[:6]}",
        data_dir=tmp_path / "agent-data",
        connection=test_connection,
        settings=LibvirtSettings(),
        contents=MemoryContents(),
    )


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def real_connection(daemon: Daemon) -> Iterator[Any]:
    connection = daemon.connect()
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture(scope="session")
def real_host(real_connection: Any, daemon: Daemon, run_id: str) -> Iterator[RealHost]:
    host = RealHost.make(real_connection, daemon.uri, run_id)
    try:
        yield host
    finally:
        host.remove()


@pytest.fixture
def real_agent(
    real_connection: Any, real_host: RealHost, guest: Guest, tmp_path: Path
) -> Iterator[LibvirtAgent]:
    agent = LibvirtAgent(
        appliance=f"t{uuid.uuid4().hex[:6]}",
        data_dir=tmp_path / "agent-data",
        connection=real_connection,
        settings=LibvirtSettings(
            domain_type=guest.domain_type, cpu_mode=None, boot=guest.boot, cpu_ratio=8.0
        ),
        contents=StreamedContents(connection=real_connection),
        uri=real_host.uri,
    )
    try:
        yield agent
    finally:
        agent.remove_everything()
