"""``edgefleet-agent`` from the command line: a state file applied as an operator would on a site
with no reconciler, and every failure told in one line, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.apply.inventory import STATE_NAME, Inventory
from agent.cli import build_parser, main
from agent.config import AgentConfig
from tests.support.appliances import TestAgent
from tests.support.states import cluster, state


def run(agent: TestAgent, *extra: str) -> int:
    path = agent.data_dir.parent / "state.json"
    return main(
        [
            "apply",
            f"--state={path}",
            f"--data-dir={agent.data_dir}",
            f"--docker-url={agent.base_url}",
            f"--default-image={agent.image}",
            "--pull=never",
            "--no-privileged",
            "--server-command=",
            "--agent-command=",
            *extra,
        ]
    )


def test_apply_from_a_file_prints_the_result_and_keeps_the_state(
    agent: TestAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    name = agent.name("pos")
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance))
    (agent.data_dir.parent / "state.json").write_bytes(desired.canonical_json())

    code = run(agent, "--format=json")  # what it makes is removed by the appliance's label
    out = capsys.readouterr().out

    assert code == 0
    printed = json.loads(out)
    assert printed["ok"] is True
    assert printed["clusters"][0]["phase"] == "Running"
    assert [t["progress"] for t in printed["clusters"][0]["tasks"]][-1] == (
        f"create node {name}-workers-1 3/3"
    )
    assert len(agent.containers(name)) == 2
    with Inventory.open(agent.data_dir) as inventory:
        assert inventory.last_good_state() == desired
        applied = inventory.last_applied()
    assert applied is not None and applied.digest == desired.digest
    assert (agent.data_dir / STATE_NAME).stat().st_mode & 0o077 == 0  # it may hold secrets

    assert run(agent) == 0
    text = capsys.readouterr().out
    assert name in text and "Running" in text and "0/0" in text


def test_a_missing_state_file_is_one_line_and_exit_1(
    agent: TestAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(agent) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgefleet-agent: ") and err.count("\n") == 1
    assert "No such file" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        build_parser().parse_args(["apply", "--state", "x.json"])
    assert usage.value.code == 2
    assert "--data-dir" in capsys.readouterr().err


def edgefleet_agent(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed command, as an operator runs it on the appliance."""
    command = str(Path(sys.executable).with_name("edgefleet-agent"))
    return subprocess.run(
        [command, *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def virtual_appliance(tmp_path: Path) -> tuple[Path, Path]:
    """An appliance's config and data folder on libvirt's test driver (no daemon)."""
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "agent.yaml"
    AgentConfig(
        applianceId="edge-1",
        ip="127.0.0.1",
        isVirtual=True,
        libvirtUri="test:///default",
        dataDir=str(data),
    ).save(config)
    return config, data


DAY_TWO_COMMANDS = [
    ("run-now", "patch", "--cluster", "pos"),
    ("restore", "--backup", "pos-20261125T020000Z"),
]


@pytest.mark.parametrize("command", DAY_TWO_COMMANDS, ids=lambda c: c[0])
def test_a_saved_state_that_does_not_parse_is_one_line_not_a_traceback(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    config, data = virtual_appliance(tmp_path)
    (data / STATE_NAME).write_text("{not json")

    ran = edgefleet_agent(config, *command)

    assert (ran.returncode, ran.stdout) == (1, "")
    assert ran.stderr == (
        "edgefleet-agent: refused: desired state: document: Invalid JSON: "
        "key must be a string at line 1 column 2\n"
    )


@pytest.mark.parametrize("command", DAY_TWO_COMMANDS, ids=lambda c: c[0])
def test_a_day_two_history_that_cannot_be_opened_is_one_line_not_a_traceback(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    config, data = virtual_appliance(tmp_path)
    (data / "daytwo.sqlite3").mkdir()  # where the database file should be

    ran = edgefleet_agent(config, *command)

    assert (ran.returncode, ran.stdout) == (1, "")
    assert ran.stderr == (
        f"edgefleet-agent: {data / 'daytwo.sqlite3'}: unable to open database file\n"
    )
