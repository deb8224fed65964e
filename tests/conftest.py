"""Fixtures for every tier: a small fleet and the example one, and, once per session, the Docker
engine (``engine``, ``docker_client``, ``node_image``) and libvirtd (``daemon``,
``libvirt_host``, ``guest``) that the heavier tiers share, all removed at the end. A service
that cannot run here skips its tests with the reason, or fails them when ``CI`` is set. Each
test gets its worker group when the suite runs on several processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import hypothesis  # noqa: F401  (see below)
import pytest

from tests.support.appliances import RUN_LABEL, remove_labelled
from tests.support.engine import (
    Engine,
    EngineUnavailable,
    build_node_image,
    find_or_start_engine,
    stop_engine,
)
from tests.support.fleet import FleetFiles, write_base_fleet
from tests.support.services import unavailable
from tests.support.workers import group_of

REPO_ROOT = Path(__file__).resolve().parents[1]
# Hypothesis is imported before any test runs: loading or rendering a fleet sets what it
# made aside from the collector (gc.freeze), and gc.get_referrers, with which Hypothesis
# checks a random generator registered when it is first imported, does not see frozen
# objects (it then warns, an error here, at the end of a run that imported it late)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test's worker group (tests/support/workers.py)."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        item.add_marker(pytest.mark.xdist_group(group_of(item.nodeid, fixtures)))


@pytest.fixture
def fleet(tmp_path: Path) -> FleetFiles:
    """A small valid fleet (three sites, both cluster modes) in a temporary folder."""
    files = FleetFiles(tmp_path / "fleet")
    write_base_fleet(files)
    return files


@pytest.fixture
def example_fleet() -> Path:
    return REPO_ROOT / "fleet-example"


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    try:
        found = find_or_start_engine()
    except EngineUnavailable as e:
        unavailable(f"no Docker engine: {e}")
    try:
        yield found
    finally:
        stop_engine(found)


@pytest.fixture(scope="session")
def docker_client(engine: Engine, run_id: str) -> Iterator[docker.DockerClient]:
    client = engine.client()
    try:
        yield client
    finally:
        remove_labelled(client, f"{RUN_LABEL}={run_id}")
        client.close()


@pytest.fixture(scope="session")
def node_image(docker_client: docker.DockerClient, run_id: str) -> Iterator[str]:
    try:
        tag = build_node_image(docker_client, f"edgefleet-test-node:{run_id}")
    except EngineUnavailable as e:
        unavailable(str(e))
    try:
        yield tag
    finally:
        remove_labelled(docker_client, f"{RUN_LABEL}={run_id}")
        docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="session")
def daemon() -> Iterator[Any]:
    """A libvirtd with the qemu driver: the system one, or one started for the session (its
    own socket and logs) and stopped at its end. One per session: two would fight over
    libvirt's fixed state folders. Skips with the reason when libvirt cannot run here."""
    try:
        from tests.support.libvirtd import DaemonUnavailable, find_or_start_daemon, stop_daemon
    except ImportError as e:
        unavailable(f"libvirt-python is not installed: {e}")
    try:
        found = find_or_start_daemon()
    except DaemonUnavailable as e:
        unavailable(f"no libvirtd: {e}")
    try:
        yield found
    finally:
        stop_daemon(found)


@pytest.fixture(scope="session")
def libvirt_host(daemon: Any, run_id: str) -> Iterator[object]:
    """Storage pools, an isolated network and an image (tests/support/hosts.py) on the
    session's libvirtd, removed at the end."""
    from tests.support.hosts import RealHost

    connection = daemon.connect()
    host = RealHost.make(connection, daemon.uri, run_id)
    try:
        yield host
    finally:
        host.remove()
        connection.close()


@pytest.fixture(scope="session")
def guest() -> Iterator[Any]:
    """A tiny guest (tests/libvirt/guest.py: the host's Debian kernel, an initramfs built
    here) and the accelerator that boots it, for the tests that look inside a virtual
    machine."""
    import shutil
    import tempfile

    from agent.drivers.libvirt import DirectBoot
    from tests.libvirt.guest import MARKER, GuestUnavailable, build_initrd, find_kernel
    from tests.support.libvirtd import Guest, guest_accelerator

    # qemu runs as its own user: the initrd lives where that user can read it
    folder = Path(tempfile.mkdtemp(prefix="edgefleet-guest-"))
    folder.chmod(0o755)
    try:
        try:
            kernel, version = find_kernel()
            initrd = build_initrd(version, folder / "initrd.img")
        except GuestUnavailable as e:
            unavailable(str(e))
        domain_type, why = guest_accelerator(kernel, initrd, marker=MARKER)
        yield Guest(DirectBoot(str(kernel), str(initrd), "console=ttyS0 quiet"), domain_type, why)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
