"""``edge-installer``: no flag carries a control character into a file; the configuration,
token and data are private; the join secret is written atomically and is 32 bytes or
refused."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.apply.inventory import (
    JOIN_SECRET_NAME,
    Inventory,
    InventoryUnreadable,
    join_secret,
)
from agent.config import AGE_KEY_NAME
from agent.installer import main
from tests.support.hostile import BOOTSTRAP, Served

DEVICE = "4f1c9b2a7d3e4c5f8a9b0c1d2e3f4a5b"
INJECTION = "\nExecStartPre=/usr/bin/touch /tmp/edgefleet-pwned"
BASE = ["-i", "10.0.0.5", "-m", "offline"]

FLAGS = [
    ("-i", "10.0.0.5\n"),
    ("-a", "https://fleet.example.test" + INJECTION),
    ("-d", "store-1\x1b[2J"),
    ("-u", "ops\r"),
    ("-x", "/run/libvirt/sock" + INJECTION),
    ("--pod-cidr", "10.42.0.0/16\n"),
    ("--http-proxy", "http://proxy.test:3128" + INJECTION),
    ("--https-proxy", "http://proxy.test:3128\u202e"),
    ("--no-proxy", ".store.test" + INJECTION),
    ("--custom-cacert", "/etc/ssl/ca.pem\n"),
    ("--registration-token", "token\n"),
    ("-s", "/root/.ssh/id_ed25519\x00"),
]


@pytest.fixture
def target(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "machine-id").write_text(DEVICE + "\n")
    return root


def written(target: Path) -> list[Path]:
    return [p for p in target.rglob("*") if p.name != "machine-id" and p.is_file()]


@pytest.mark.parametrize(("flag", "value"), FLAGS, ids=[f[0] for f in FLAGS])
def test_a_flag_with_a_control_character_is_refused_and_nothing_written(
    target: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    code = main([*BASE, flag, value, "--target", str(target)])

    err = capsys.readouterr().err
    assert code == 2
    assert re.search(rf"{re.escape(flag)}[/\w-]*: control characters are not allowed", err), err
    assert written(target) == []
    assert not Path("/tmp/edgefleet-pwned").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--no-proxy", ".store.test ExecStartPre=x"], "--no-proxy: '.store.test ExecStartPre=x'"),
        (["--no-proxy", "a;b"], "is not a comma-separated list of hosts"),
        (["-u", "root user"], "-u/--sshuser: 'root user' is not a user name"),
        (["--http-proxy", "x" * 5000], "--http-proxy: longer than 4096 characters"),
    ],
)
def test_flags_that_reach_the_unit_must_be_what_they_say(
    target: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main([*BASE, *flags, "--target", str(target)]) == 2
    assert message in capsys.readouterr().err
    assert written(target) == []


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_secrets_and_data_are_private(target: Path) -> None:
    (target / "var/lib/edgefleet").mkdir(parents=True, mode=0o755)  # an older install's
    os.chmod(target / "var/lib/edgefleet", 0o755)

    assert main([*BASE, "--no-proxy", ".store.test,10.0.0.0/8", "--target", str(target)]) == 0

    assert mode(target / "etc/edgefleet") == 0o700
    assert mode(target / "etc/edgefleet/agent.yaml") == 0o600
    data = target / "var/lib/edgefleet"
    assert mode(data) == 0o700
    secret = data / JOIN_SECRET_NAME
    assert mode(secret) == 0o600 and len(secret.read_bytes()) == 32
    # no partial file left: the join secret and the appliance's age identity, both private
    assert sorted(p.name for p in data.iterdir()) == sorted([JOIN_SECRET_NAME, AGE_KEY_NAME])
    assert mode(data / AGE_KEY_NAME) == 0o600
    unit = (target / "etc/systemd/system/edgefleet-agent.service").read_text()
    assert [line for line in unit.splitlines() if line.startswith("ExecStart")] != []
    assert len([line for line in unit.splitlines() if line.startswith("Exec")]) == 1
    assert "Environment=NO_PROXY=.store.test,10.0.0.0/8\n" in unit

    before = secret.read_bytes()
    assert main([*BASE, "--target", str(target)]) == 0
    assert secret.read_bytes() == before  # a second install keeps the clusters' secret


@pytest.mark.parametrize("content", [b"", b"short", b"x" * 33], ids=["empty", "short", "long"])
def test_a_join_secret_of_the_wrong_length_is_refused_not_replaced(
    target: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    data = target / "var/lib/edgefleet"
    data.mkdir(parents=True)
    (data / JOIN_SECRET_NAME).write_bytes(content)

    assert main([*BASE, "--target", str(target)]) == 1

    refused = f"a join secret is exactly 32 bytes, this one is {len(content)}"
    assert refused in capsys.readouterr().err
    assert (data / JOIN_SECRET_NAME).read_bytes() == content
    with pytest.raises(InventoryUnreadable, match="exactly 32 bytes"):
        join_secret(data)


def test_a_join_secret_interrupted_before_its_rename_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_args: object) -> None:
        raise OSError("the power went")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="the power went"):
        join_secret(tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert len(join_secret(tmp_path)) == 32


def test_the_agent_makes_an_existing_data_folder_and_its_database_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    (data / "inventory.sqlite3").touch(mode=0o644)
    os.chmod(data / "inventory.sqlite3", 0o644)

    inventory = Inventory.open(data)
    inventory.close()

    assert mode(data) == 0o700
    assert mode(data / "inventory.sqlite3") == 0o600


def test_the_agent_token_is_private(served: Served, target: Path) -> None:
    served.start()
    code = main([
        "-i", "10.0.0.5", "-a", served.url, "-d", "store-1-a",
        "--registration-token", BOOTSTRAP, "--target", str(target),
        "--server-key", str(served.work / "signing.pem.pub"), "--insecure-http",
    ])  # fmt: skip
    assert code == 0
    token = target / "etc/edgefleet/agent-token"
    assert mode(token) == 0o600 and mode(token.parent) == 0o700
    assert token.read_text().strip()


APPLIANCE_ID = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=70))
def test_any_device_id_is_installed_only_if_it_is_a_valid_appliance_id(device: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder)
        try:
            code = main([*BASE, "-d", device, "--target", str(target)])
        except SystemExit as e:  # argparse: a value that looks like a flag
            code = int(e.code or 0)
        valid = bool(APPLIANCE_ID.fullmatch(device)) and len(device) <= 63
        assert code == (0 if valid else 2), device
        assert (target / "etc/edgefleet/agent.yaml").exists() == valid
