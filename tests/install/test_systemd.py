"""A real run under systemd: a Debian root built by mmdebstrap, with systemd as PID 1, in a
container on the session's Docker engine. The installed ``edge-installer`` (the wheel's, run
with the seed's bare ``--``) checks the engine and a real reconciler, writes its files,
registers, and runs ``systemctl enable --now``; the agent then runs as the service, and
``--uninstall`` stops and removes it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import docker
import pytest
from docker.models.containers import Container, ExecResult

from tests.support.appliances import RUN_LABEL
from tests.support.engine import Engine
from tests.support.fleet import FleetFiles
from tests.support.hostile import BOOTSTRAP, Served, free_port, init_repository
from tests.support.services import install_missing_packages, unavailable

from .wheels import Installation

APPLIANCE = "store-1-a"
PYTHON_HOME = Path(sys.base_prefix)  # the interpreter the installation's venv runs on
# systemd, and the libraries the mounted Python interpreter links against
PACKAGES = ("systemd", "systemd-sysv", "dbus", "ca-certificates", "libsqlite3-0", "libffi8",
            "libssl3", "zlib1g", "libbz2-1.0", "liblzma5", "libuuid1")  # fmt: skip


@pytest.fixture(scope="session")
def systemd_image(
    docker_client: docker.DockerClient, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    install_missing_packages("mmdebstrap", timeout=600)
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        unavailable("mmdebstrap is missing (Debian package mmdebstrap; make test installs it)")
    tar = tmp_path_factory.mktemp("systemd-root") / "root.tar"
    done = subprocess.run(
        [mmdebstrap, "--variant=apt", f"--include={','.join(PACKAGES)}", "bookworm", str(tar)],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if done.returncode != 0:
        unavailable(f"mmdebstrap could not build a Debian root: {done.stderr[-500:]}")
    repository = "edgefleet-test-systemd"
    docker_client.api.import_image_from_file(
        str(tar), repository=repository, tag=run_id, changes=['CMD ["/lib/systemd/systemd"]']
    )
    tar.unlink()
    try:
        yield f"{repository}:{run_id}"
    finally:
        docker_client.images.remove(f"{repository}:{run_id}", force=True)


@pytest.fixture(scope="session")
def appliance_install(installed: Installation, run_id: str) -> Iterator[Installation]:
    """The wheel installed outside /tmp, as on an appliance: the agent's unit has a private
    /tmp (PrivateTmp=yes), where an installation in /tmp is not there to run; under the home
    folder, which the unit keeps readable."""
    folder = Path.home() / ".cache" / f"edgefleet-test-systemd-{run_id}"
    try:
        yield Installation.create(folder / "venv", installed.wheel)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def served(fleet: FleetFiles, tmp_path: Path) -> Iterator[Served]:
    init_repository(fleet)
    work = tmp_path / "work"
    work.mkdir()
    found = Served(fleet, work, free_port())
    found.start()
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture
def machine(
    systemd_image: str,
    docker_client: docker.DockerClient,
    engine: Engine,
    appliance_install: Installation,
    served: Served,
    run_id: str,
) -> Iterator[Container]:
    """The booted root: the installation, its Python, the reconciler's public key and the
    engine's socket folder mounted where they are on this machine; the host's network (the
    engine of the tests has no bridge), so the reconciler on 127.0.0.1 is reachable."""
    socket = Path(urlsplit(engine.base_url).path)
    mounts = {
        str(appliance_install.venv): {"bind": str(appliance_install.venv), "mode": "ro"},
        str(PYTHON_HOME): {"bind": str(PYTHON_HOME), "mode": "ro"},
        str(served.work): {"bind": str(served.work), "mode": "ro"},
        str(socket.parent): {"bind": "/engine", "mode": "rw"},
    }
    # not privileged (that asks for every capability, and hosts may withhold some): systemd
    # needs CAP_SYS_ADMIN and the cgroup tree, the agent's unit its mount namespaces
    mounts["/sys/fs/cgroup"] = {"bind": "/sys/fs/cgroup", "mode": "ro"}
    container = docker_client.containers.run(
        systemd_image,
        detach=True,
        cap_add=["SYS_ADMIN"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        network_mode="host",
        tmpfs={"/run": "", "/run/lock": "", "/tmp": ""},
        volumes=mounts,
        labels={RUN_LABEL: run_id},
        name=f"edgefleet-systemd-{run_id}",
    )
    try:
        # until systemd's bus is up, systemctl cannot ask it anything
        assert until(
            lambda: (
                b"Failed to connect" not in run(container, "systemctl", "is-system-running").output
            ),
            60,
        ), container.logs()[-2000:]
        state = run(container, "systemctl", "is-system-running", "--wait", timeout=120)
        assert state.output.decode().strip() in ("running", "degraded"), state.output
        yield container
    finally:
        container.remove(force=True)


def run(container: Container, *command: str, timeout: int = 60) -> ExecResult:
    return container.exec_run(["timeout", str(timeout), *command])


def until(check, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def test_edge_installer_enables_and_starts_the_agent_under_systemd(
    machine: Container, appliance_install: Installation, served: Served, engine: Engine
) -> None:
    installed = appliance_install
    installer = str(installed.bin / "edge-installer")
    done = run(
        machine, installer, "--",
        "-i", "127.0.0.1", "-d", APPLIANCE, "-a", served.url, "--insecure-http",
        "--registration-token", BOOTSTRAP, "--server-key", str(served.work / "signing.pem.pub"),
        "--docker-host", "unix:///engine/docker.sock",
        timeout=180,
    )  # fmt: skip
    out = done.output.decode()
    journal = run(machine, "journalctl", "--no-pager", "-n", "40", "-u", "edgefleet-agent")
    assert done.exit_code == 0, out + journal.output.decode(errors="replace")
    assert "ok: the Docker engine answers at unix:///engine/docker.sock" in out
    assert f"ok: the reconciler answers at {served.url}" in out
    assert f"registered appliance {APPLIANCE}" in out
    assert "ran: systemctl enable --now edgefleet-agent.service" in out

    unit = run(machine, "cat", "/etc/systemd/system/edgefleet-agent.service").output.decode()
    assert f"ExecStart={installed.bin / 'edgefleet-agent'} run --config" in unit
    assert run(machine, "systemctl", "is-enabled", "edgefleet-agent").output.strip() == b"enabled"

    def active() -> bool:
        return run(machine, "systemctl", "is-active", "edgefleet-agent").output.strip() == b"active"

    assert until(active, 30), run(machine, "journalctl", "-u", "edgefleet-agent").output.decode()

    # the agent stays up and reaches its reconciler: the appliance is seen there
    def seen() -> bool:
        appliances = served.site("store-1").get("appliances") or []
        return any(
            a.get("id") == APPLIANCE and a.get("lastSeen")
            for a in appliances  # type: ignore[union-attr]
        )

    assert until(seen, 60), served.site("store-1")
    restarts = run(machine, "systemctl", "show", "-p", "NRestarts", "--value", "edgefleet-agent")
    journal = run(machine, "journalctl", "-u", "edgefleet-agent").output
    assert restarts.output.strip() == b"0", journal

    done = run(machine, installer, "--uninstall")
    out = done.output.decode()
    assert done.exit_code == 0, out
    assert "ran: systemctl disable --now edgefleet-agent.service" in out
    assert run(machine, "systemctl", "is-active", "edgefleet-agent").output.strip() != b"active"
    assert run(machine, "test", "-e", "/etc/systemd/system/edgefleet-agent.service").exit_code == 1
    assert run(machine, "test", "-d", "/var/lib/edgefleet").exit_code == 0  # the data stays
