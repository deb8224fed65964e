"""``edgefleet appliance reset|enroll``: bad arguments are refused before the server is asked
(the answers of a real server are covered in tests/service and tests/e2e)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "argv,message",
    [
        (["reset", "store-1-a", "--ttl", "1h"], "--ttl is for enroll, not reset"),
        (["enroll", "store-1-a", "--ttl", "soon"], "--ttl: 'soon' is not a duration"),
        (["enroll", "store-1-a", "--ttl", "30s"], "--ttl must be between 1m and 30d"),
        (["enroll", "store-1-a", "--ttl", "31d"], "--ttl must be between 1m and 30d"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(run_cli, argv: list[str], message: str) -> None:
    result = run_cli("appliance", *argv, "--server", "http://127.0.0.1:9")
    assert result.code == 2
    assert result.err.startswith(f"edgefleet: {message}")
    assert len(result.err.strip().splitlines()) == 1


def test_an_unreachable_server_is_one_line_and_exit_1(run_cli, monkeypatch) -> None:
    monkeypatch.setenv("EDGEFLEET_TOKEN", "admin-token-0123456789abcdef0123456789")
    result = run_cli("appliance", "reset", "store-1-a", "--server", "http://127.0.0.1:9")
    assert result.code == 1
    assert result.err.startswith("edgefleet: cannot reach the reconciler at http://127.0.0.1:9")
