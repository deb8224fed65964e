"""Failed revisions keep every site on its last good state; fleet status and
``edgefleet status`` show the failed commit's short sha and errors."""

from __future__ import annotations

import argparse
import json

import pytest

from reconciler.cli import status
from tests.support.operators import VIEWER_TOKEN

from .conftest import Harness
from .fleets import digests, release, revision, site

SITES = [site("grocery-1", ring="canary"), site("store-2")]
ERRORS = [
    "sites/store-2/clusters/store.yaml:14: control-plane pool size must be 1, 3 or 5 (got 2)",
    "sites/store-2/site.yaml:3: 'Mars/Olympus' is not an IANA time zone",
]


@pytest.fixture(autouse=True)
def viewer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEFLEET_TOKEN", VIEWER_TOKEN)


def run_status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="edgefleet")
    status.register(parser.add_subparsers(dest="command"))
    parsed = parser.parse_args(["status", *args])
    code = parsed.run(parsed)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_failed_revision_keeps_every_site_on_its_last_good_state(
    server: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    good = release(revision("r1"), SITES)
    server.rollout.record_release(good)
    agents = {a: server.agent(a) for a in ("grocery-1-edge", "store-2-edge")}
    for agent in agents.values():
        agent.apply()
    bad = revision("r2-broken")
    assert server.rollout.record_failure(bad, ERRORS, reconcile_seconds=0.2)
    assert not server.rollout.record_failure(bad, ERRORS)  # recorded once
    for appliance, agent in agents.items():
        assert agent.desired(etag=digests(good)[appliance]).status_code == 304
    fleet = server.fleet()
    assert fleet["revision"]["sha"] == good.revision
    assert fleet["lastFailure"]["short"] == bad[:7]
    assert fleet["lastFailure"]["errors"] == ERRORS
    assert fleet["lastFailure"]["current"] is True

    code, out, _ = run_status(capsys, "--server", server.base_url)
    assert code == 0
    assert f"revision      {good.revision[:7]}" in out
    assert f"last failure  {bad[:7]}" in out
    assert "newer than the current revision" in out
    assert ERRORS[0] in out
    for name in ("grocery-1", "store-2"):
        assert name in out
    assert "canary" in out and "everyone" in out

    # the next good commit clears "current" but the failure stays visible
    server.rollout.record_release(release(revision("r3"), SITES, manifest="v3"))
    assert server.fleet()["lastFailure"]["current"] is False


def test_status_json_and_site_detail(server: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    server.rollout.record_release(release(revision("r1"), SITES))
    server.agent("grocery-1-edge").apply()
    server.agent("stranger-9")
    code, out, _ = run_status(capsys, "--server", server.base_url, "--format", "json")
    assert code == 0
    fleet = json.loads(out)
    assert [s["name"] for s in fleet["sites"]] == ["grocery-1", "store-2"]
    assert [d["id"] for d in fleet["discovered"]] == ["stranger-9"]
    code, out, _ = run_status(capsys, "--server", server.base_url)
    assert "discovered    stranger-9" in out
    assert "grocery-1-store Running 100%" in out
    code, out, _ = run_status(capsys, "--server", server.base_url, "--site", "grocery-1")
    assert code == 0
    assert "grocery-1-edge" in out and "In-Use" in out and "healthy" in out


def test_status_reports_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_status(capsys, "--server", "http://127.0.0.1:9")
    assert code == 1
    assert "cannot reach the reconciler at http://127.0.0.1:9" in err
    assert "set --server or EDGEFLEET_SERVER" in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""


def test_status_reports_an_unknown_site(
    server: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_status(capsys, "--server", server.base_url, "--site", "nowhere")
    assert code == 1
    assert "404" in err and "no site nowhere" in err
