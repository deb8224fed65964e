"""The built wheel, installed outside the checkout, runs the README on a copy of the example
fleet: the agent's commands with the base dependencies alone (no FastAPI, pygit2 or Jinja),
then validate, render, plan and serve with the ``server`` extra."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import git

from .wheels import ROOT, Installation

pytestmark = pytest.mark.slow

SERVER_ONLY = ("fastapi", "pygit2", "jinja2", "uvicorn", "alembic")


def test_the_wheel_holds_the_templates_and_units(installed: Installation) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    packs = {n.split("/")[2] for n in names if n.startswith("edgefleet_templates/packs/")}
    assert packs == {p.name for p in (ROOT / "templates/packs").iterdir() if p.is_dir()}
    assert "edgefleet_templates/nodes/libvirt-domain.xml.j2" in names
    assert "edgefleet_deploy/edgefleet.service" in names
    assert "edgefleet_deploy/edgefleet-agent.service" in names
    assert "reconciler/store/migrations/versions/r0001_baseline.py" in names
    dashboard = ROOT / "reconciler/api/dashboard"
    for kept in ("templates/base.html", "static/dashboard.css", "static/htmx/htmx.min.js",
                 "static/htmx/LICENSE"):  # fmt: skip
        assert (dashboard / kept).is_file() and f"reconciler/api/dashboard/{kept}" in names


def test_an_appliance_install_runs_the_agent_without_the_server_set(
    installed: Installation, tmp_path: Path
) -> None:
    for module in SERVER_ONLY:
        probe = installed.run("python", "-c", f"import {module}", cwd=tmp_path)
        assert probe.returncode != 0, f"{module} came with the appliance's install"
    for command in ("edgefleet-agent", "edge-installer"):
        shown = installed.run(command, "--help", cwd=tmp_path)
        assert shown.returncode == 0 and "usage:" in shown.stdout, shown.stderr
    reconciler = installed.run("edgefleet", "validate", ".", cwd=tmp_path)
    assert reconciler.returncode == 1
    assert reconciler.stderr.endswith("need pip install 'edgefleet[server]'\n")
    assert reconciler.stderr.count("\n") == 1, reconciler.stderr


def test_a_server_install_validates_renders_plans_and_serves_the_example(
    installed: Installation, tmp_path: Path
) -> None:
    installed.add_extras("server")
    fleet = tmp_path / "fleet"
    shutil.copytree(ROOT / "fleet-example", fleet)
    git(fleet, "init", "-q", "-b", "main")
    git(fleet, "add", "-A")
    git(fleet, "commit", "-qm", "the example fleet")
    work = tmp_path / "work"  # commands run from here, away from the checkout and the fleet
    work.mkdir()
    where = installed.run(
        "python", "-c", "import edgefleet_templates, reconciler; "
        "print(edgefleet_templates.__file__); print(reconciler.__file__)", cwd=work,
    )  # fmt: skip
    assert all(line.startswith(str(installed.venv)) for line in where.stdout.split()), where

    checked = installed.run("edgefleet", "validate", str(fleet), cwd=work)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rendered = installed.run("edgefleet", "render", str(fleet), "--out", "out", cwd=work)
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    assert list((work / "out").glob("*/appliances/*.json"))
    cluster = fleet / "sites/grocery-0412/clusters/grocery-0412-store.yaml"
    cluster.write_text(cluster.read_text().replace('"0 23 * * *"', '"30 23 * * *"'))
    git(fleet, "commit", "-qam", "grocery-0412 backs up later")
    planned = installed.run(
        "edgefleet", "plan", str(fleet), "--base", "HEAD~1", "--head", "HEAD", cwd=work
    )
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "1 of 4 sites change" in planned.stdout

    token = work / "bootstrap"
    token.write_text("bootstrap-token-0123456789")
    key = work / "signing.pem"
    made = subprocess.run(
        [str(installed.bin / "edgefleet"), "keygen", "--out", str(key)],
        cwd=work, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = work / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(installed.bin / "edgefleet"), "serve", str(fleet), "--listen",
             f"127.0.0.1:{port}", "--bootstrap-token-file", str(token), "--db",
             f"sqlite:///{work / 'store.db'}", "--signing-key", str(key)],
            cwd=work, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        healthy = False
        while time.monotonic() < deadline and server.poll() is None and not healthy:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success
            except httpx.TransportError:
                time.sleep(0.2)
        assert healthy, log.read_text()
    finally:
        server.terminate()
        server.wait(20)
    assert "Traceback" not in log.read_text()
