"""The systemd units of deploy/, checked with Debian's systemd tools: `systemd-analyze verify`
passes on the reconciler's unit and on the agent's unit as edge-installer writes it, and
`systemd-analyze security` rates the reconciler OK or better and the agent MEDIUM or better."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.installer import main as install
from tests.support.engine import Engine
from tests.support.services import unavailable

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# systemd's exposure levels, best first
LEVELS = ["PERFECT", "SAFE", "OK", "MEDIUM", "EXPOSED", "UNSAFE", "DANGEROUS"]


@pytest.fixture(scope="module")
def analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        unavailable("systemd-analyze is missing (Debian package systemd; `make test` installs it)")
    return found


def verify(analyze: str, unit: Path) -> None:
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def exposure(analyze: str, unit: Path) -> tuple[float, str]:
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60, cwd=unit.parent,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", done.stdout)
    assert found is not None, done.stdout + done.stderr
    return float(found.group(1)), found.group(2)


def test_the_reconciler_unit_verifies_and_rates_ok(analyze: str, tmp_path: Path) -> None:
    unit = tmp_path / "edgefleet.service"
    text = (DEPLOY / "edgefleet.service").read_text()
    assert "ExecStart=/opt/edgefleet/bin/edgefleet serve\n" in text
    assert "EnvironmentFile=/etc/edgefleet/edgefleet.env\n" in text
    assert "StateDirectory=edgefleet\n" in text
    # verify looks for the program: the one of this installation stands in for /opt's
    edgefleet = Path(sys.executable).with_name("edgefleet")
    unit.write_text(text.replace("/opt/edgefleet/bin/edgefleet", str(edgefleet)))
    verify(analyze, unit)
    score, level = exposure(analyze, unit)
    assert LEVELS.index(level) <= LEVELS.index("OK"), (score, level)


def test_the_agent_unit_edge_installer_writes_verifies_and_rates_medium(
    analyze: str, tmp_path: Path, engine: Engine
) -> None:
    target = tmp_path / "root"
    code = install(
        ["-i", "192.168.10.20", "-d", "store-1-a", "-m", "offline", "--target", str(target),
         "--https-proxy", "http://ops:s3cret@proxy.store.test:3128",
         "--docker-host", engine.base_url]
    )  # fmt: skip
    assert code == 0
    unit = target / "etc/systemd/system/edgefleet-agent.service"
    text = unit.read_text()
    # the proxy (its password) and the backup credentials are in 0600 environment files
    assert "s3cret" not in text
    assert "EnvironmentFile=-/etc/edgefleet/agent.env\n" in text
    assert "EnvironmentFile=-/etc/edgefleet/credentials.env\n" in text
    agent = Path(sys.executable).with_name("edgefleet-agent")
    assert f"ExecStart={agent} run --config /etc/edgefleet/agent.yaml\n" in text
    # the installer's unit is the shipped one with its executable set
    shipped = (DEPLOY / "edgefleet-agent.service").read_text()
    shipped_start = "ExecStart=/usr/local/bin/edgefleet-agent "
    assert text.replace(f"ExecStart={agent} ", shipped_start) == shipped
    verify(analyze, unit)
    score, level = exposure(analyze, unit)
    assert LEVELS.index(level) <= LEVELS.index("MEDIUM"), (score, level)
