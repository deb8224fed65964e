"""Offline bundles: signed by ``edgefleet bundle``, verified by the agent before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.contract import DesiredState
from agent.link.bundles import BundleError, load_public_key, verify


@pytest.fixture
def key(run_cli, tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "signing.pem"
    assert run_cli("keygen", "--out", str(path)).code == 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return path


def make_bundle(run_cli, example_fleet: Path, key: Path, out: Path) -> None:
    result = run_cli(
        "bundle", str(example_fleet), "--appliance", "grocery-0412-vm", "--key", str(key),
        "--out", str(out),
    )  # fmt: skip
    assert result.code == 0, result.out + result.err


def test_bundle_verifies_with_the_public_key(
    run_cli, example_fleet: Path, key: Path, tmp_path: Path
) -> None:
    out = tmp_path / "grocery.bundle"
    make_bundle(run_cli, example_fleet, key, out)
    state = verify(out.read_bytes(), load_public_key(Path(f"{key}.pub")))
    assert isinstance(state, DesiredState)
    assert state.appliance == "grocery-0412-vm"
    assert state.clusters[0].name == "grocery-0412-store"


def test_tampered_bundle_is_refused(
    run_cli, example_fleet: Path, key: Path, tmp_path: Path
) -> None:
    out = tmp_path / "grocery.bundle"
    make_bundle(run_cli, example_fleet, key, out)
    bundle = json.loads(out.read_text())
    bundle["state"]["clusters"][0]["nodes"][0]["image"] = "evil/k3s:latest"
    with pytest.raises(BundleError, match="bad signature"):
        verify(json.dumps(bundle).encode(), load_public_key(Path(f"{key}.pub")))


def test_bundle_from_another_key_is_refused(
    run_cli, example_fleet: Path, key: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.pem"
    assert run_cli("keygen", "--out", str(other)).code == 0
    out = tmp_path / "grocery.bundle"
    make_bundle(run_cli, example_fleet, other, out)
    with pytest.raises(BundleError, match="bad signature"):
        verify(out.read_bytes(), load_public_key(Path(f"{key}.pub")))


def test_keygen_never_overwrites(run_cli, key: Path) -> None:
    result = run_cli("keygen", "--out", str(key))
    assert result.code == 2
    assert "not overwriting" in result.err


def test_unknown_appliance_is_a_usage_error(
    run_cli, example_fleet: Path, key: Path, tmp_path: Path
) -> None:
    result = run_cli(
        "bundle", str(example_fleet), "--appliance", "nope", "--key", str(key),
        "--out", str(tmp_path / "x"),
    )  # fmt: skip
    assert result.code == 2
    assert "appliance 'nope' is not declared in any site" in result.err
