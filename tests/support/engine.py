"""The Docker engine the tests use, and their node image, made on this machine.

When no engine answers, one is started from Debian's ``docker.io`` with its own folders, no
default bridge and no iptables rules, so it touches nothing outside them. The node image holds
Debian's static busybox: it stands in for k3s, because no image can be pulled here.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import DockerException

from tests.support.services import install_missing_packages

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
NODE_COMMAND = "mkdir -p /var/lib/rancher/k3s/server/manifests; exec sleep 1000000"
BUSYBOX_APPLETS = ("sh", "cat", "ls", "rm", "mkdir", "sleep", "echo", "nc", "httpd", "grep", "env")


class EngineUnavailable(Exception):
    """No engine answers and none could be started; the message says why."""


@dataclass
class Engine:
    base_url: str
    process: subprocess.Popen[bytes] | None = None
    folder: Path | None = None

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.base_url, timeout=60)


def find_or_start_engine() -> Engine:
    """The engine of DOCKER_HOST or the default socket if it answers, else a fresh one."""
    for base_url in filter(None, (os.environ.get("DOCKER_HOST"), DEFAULT_SOCKET)):
        if _answers(base_url):
            return Engine(base_url)
    install_missing_packages("dockerd", timeout=600)
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailable("no Docker engine answers and dockerd is not installed")
    folder = Path(tempfile.mkdtemp(prefix="edgefleet-dockerd-"))
    base_url = f"unix://{folder}/docker.sock"
    log = open(folder / "dockerd.log", "wb")  # noqa: SIM115 - the daemon writes to it
    process = subprocess.Popen(
        [
            dockerd,
            f"--host={base_url}",
            f"--data-root={folder / 'data'}",
            f"--exec-root={folder / 'exec'}",
            f"--pidfile={folder / 'docker.pid'}",
            "--bridge=none",
            "--iptables=false",
            "--ip-forward=false",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    engine = Engine(base_url, process, folder)
    deadline = time.monotonic() + 60
    while not _answers(base_url):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = (folder / "dockerd.log").read_text(errors="replace").strip().splitlines()[-3:]
            stop_engine(engine)
            raise EngineUnavailable(f"dockerd did not start: {' | '.join(tail)}")
        time.sleep(0.2)
    return engine


def stop_engine(engine: Engine) -> None:
    """Stop an engine this module started and remove its folder; leave any other alone."""
    if engine.process is None or engine.folder is None:
        return
    if engine.process.poll() is None:
        engine.process.send_signal(signal.SIGTERM)
        try:
            engine.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            engine.process.kill()
            engine.process.wait(timeout=10)
    mounted = [
        line.split()[1]
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1].startswith(str(engine.folder))
    ]
    if not mounted:  # never delete through a mount the daemon left behind
        shutil.rmtree(engine.folder, ignore_errors=True)


def build_node_image(client: docker.DockerClient, tag: str) -> str:
    busybox = static_busybox()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
    repository, _, version = tag.partition(":")
    client.api.import_image_from_data(
        archive.getvalue(),
        repository=repository,
        tag=version,
        changes=[f'CMD ["/bin/sh", "-c", "{NODE_COMMAND}"]'],
    )
    return tag


def static_busybox() -> str:
    """Debian's busybox-static: a dynamically linked busybox would not run in the image."""
    listed = subprocess.run(
        ["dpkg", "-L", "busybox-static"], capture_output=True, text=True, check=False
    )
    for line in listed.stdout.splitlines():
        if line.endswith("/bin/busybox") and Path(line).exists():
            return line
    raise EngineUnavailable("the Debian package busybox-static is not installed")


def _answers(base_url: str) -> bool:
    if base_url.startswith("unix://") and not Path(base_url.removeprefix("unix://")).exists():
        return False
    try:
        client = docker.DockerClient(base_url=base_url, timeout=5)
    except DockerException:
        return False
    try:
        return bool(client.ping())
    except DockerException:
        return False
    finally:
        client.close()
