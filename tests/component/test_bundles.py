"""Offline bundles: signed by ``edgefleet bundle``, bound to their appliance, numbered, and
verified by the agent before anything runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.contract import DesiredState
from agent.link.bundles import Bundle, BundleError, BundleLedger, open_bundle
from agent.signatures import load_public_keys

APPLIANCE = "grocery-0412-vm"


def verify(data: bytes, keys: object, appliance: str = APPLIANCE) -> DesiredState:
    return open_bundle(data, keys, appliance=appliance).state  # type: ignore[arg-type]


def load_public_key(path: Path) -> object:
    return load_public_keys(path)


@pytest.fixture
def key(run_cli, tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "signing.pem"
    assert run_cli("keygen", "--out", str(path)).code == 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return path


def make_bundle(run_cli, example_fleet: Path, key: Path, out: Path, *extra: str) -> None:
    result = run_cli(
        "bundle", str(example_fleet), "--appliance", APPLIANCE, "--key", str(key),
        "--out", str(out), *extra,
    )  # fmt: skip
    assert result.code == 0, result.out + result.err


def test_bundle_verifies_with_the_public_key(
    run_cli, example_fleet: Path, key: Path, tmp_path: Path
) -> None:
    out = tmp_path / "grocery.bundle"
    make_bundle(run_cli, example_fleet, key, out)
    state = verify(out.read_bytes(), load_public_key(Path(f"{key}.pub")))
    assert isinstance(state, DesiredState)
    assert state.appliance == APPLIANCE
    assert state.clusters[0].name == "grocery-0412-store"
    document = json.loads(out.read_text())
    assert document["appliance"] == APPLIANCE
    issued = datetime.fromisoformat(document["issuedAt"])
    assert abs(datetime.now(UTC) - issued) < timedelta(minutes=1)
    assert document["sequence"] == pytest.approx(issued.timestamp() * 1000, abs=1000)


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


def test_a_bundle_for_another_appliance_is_refused(
    run_cli, example_fleet: Path, key: Path, tmp_path: Path
) -> None:
    out = tmp_path / "grocery.bundle"
    make_bundle(run_cli, example_fleet, key, out)
    with pytest.raises(BundleError) as refused:
        verify(out.read_bytes(), load_public_key(Path(f"{key}.pub")), "store-berlin-07-edge")
    assert str(refused.value) == (
        "the bundle is for appliance 'grocery-0412-vm', this appliance is 'store-berlin-07-edge'"
    )


@pytest.mark.parametrize(
    "field,value",
    [
        ("appliance", "store-berlin-07-edge"),  # re-addressed to another appliance
        ("sequence", 99_999_999_999_999),  # made to look newer
        ("issuedAt", "2999-01-01T00:00:00+00:00"),
    ],
)
def test_the_binding_and_the_order_are_signed(
    run_cli, example_fleet: Path, key: Path, tmp_path: Path, field: str, value: object
) -> None:
    out = tmp_path / "grocery.bundle"
    make_bundle(run_cli, example_fleet, key, out)
    document = json.loads(out.read_text())
    document[field] = value
    with pytest.raises(BundleError, match="bad signature"):
        verify(json.dumps(document).encode(), load_public_key(Path(f"{key}.pub")), str(
            document["appliance"]
        ))


def test_a_version_1_bundle_is_refused(
    run_cli, example_fleet: Path, key: Path, tmp_path: Path
) -> None:
    out = tmp_path / "grocery.bundle"
    make_bundle(run_cli, example_fleet, key, out)
    document = json.loads(out.read_text())
    document["format"] = "edgefleet-bundle/v1"
    with pytest.raises(BundleError, match="format must be edgefleet-bundle/v2"):
        verify(json.dumps(document).encode(), load_public_key(Path(f"{key}.pub")))


def _opened(run_cli, example_fleet: Path, key: Path, out: Path, *extra: str) -> Bundle:
    make_bundle(run_cli, example_fleet, key, out, *extra)
    return open_bundle(out.read_bytes(), load_public_keys(Path(f"{key}.pub")), appliance=APPLIANCE)


def test_the_ledger_refuses_an_older_bundle_unless_told(
    run_cli, example_fleet: Path, key: Path, tmp_path: Path
) -> None:
    first = _opened(run_cli, example_fleet, key, tmp_path / "1.bundle", "--sequence", "1")
    second = _opened(run_cli, example_fleet, key, tmp_path / "2.bundle", "--sequence", "2")
    ledger = BundleLedger(tmp_path / "data")
    ledger.admit(first)
    ledger.record(first)
    ledger.admit(second)
    ledger.record(second)
    ledger.admit(second)  # the same bundle again
    with pytest.raises(BundleError) as refused:
        ledger.admit(first)
    assert "(sequence 1, issued " in str(refused.value)
    assert "is older than the one applied last (sequence 2, issued" in str(refused.value)
    assert "\n" not in str(refused.value)
    ledger.admit(first, allow_downgrade=True)
    # a later bundle of the same number and another state is not taken for the same one
    other = _opened(run_cli, example_fleet, key, tmp_path / "x.bundle", "--sequence", "2")
    assert other.state.digest == second.state.digest  # same revision: same state
    ledger.admit(other)


def test_sequence_defaults_to_the_issue_time(
    run_cli, example_fleet: Path, key: Path, tmp_path: Path
) -> None:
    earlier = _opened(run_cli, example_fleet, key, tmp_path / "1.bundle")
    later = _opened(run_cli, example_fleet, key, tmp_path / "2.bundle")
    assert (later.sequence, later.issued_at) > (earlier.sequence, earlier.issued_at)
    ledger = BundleLedger(tmp_path / "data")
    ledger.record(later)
    with pytest.raises(BundleError, match="older than the one applied last"):
        ledger.admit(earlier)


def test_an_unreadable_ledger_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="bundle.json: unreadable"):
        BundleLedger(tmp_path).last()
