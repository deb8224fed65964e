"""Registration, tokens and bad input on the agent endpoints of a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from .agents import BOOTSTRAP, Agent
from .conftest import Harness
from .fleets import digests, release, revision, site

SITES = [site("grocery-1", ring="canary"), site("store-2")]


@pytest.fixture
def released(server: Harness) -> dict[str, str]:
    rel = release(revision("r1"), SITES)
    server.rollout.record_release(rel)
    return digests(rel)


def test_declared_appliance_registers_ready_and_gets_its_state(
    server: Harness, released: dict[str, str]
) -> None:
    agent = server.agent("grocery-1-edge", register=False)
    answer = agent.register()
    assert answer.status_code == 200
    assert answer.json()["status"] == "Ready"
    assert answer.json()["applianceId"] == "grocery-1-edge"
    document = agent.desired().json()
    assert document["appliance"] == "grocery-1-edge"
    assert document["digest"] == released["grocery-1-edge"]
    appliances = server.site("grocery-1")["appliances"]
    assert [(a["id"], a["status"], a["health"]) for a in appliances] == [
        ("grocery-1-edge", "Ready", "healthy")
    ]


def test_undeclared_appliance_is_discovered_and_gets_no_state(
    server: Harness, released: dict[str, str]
) -> None:
    agent = server.agent("stranger-01", register=False)
    answer = agent.register(hostname="stranger", ip="10.1.2.3", arch="arm64")
    assert answer.status_code == 200
    assert answer.json()["status"] == "Discovered"
    assert agent.desired().status_code == 404
    assert agent.desired(wait=0.2).status_code == 404
    discovered = server.fleet()["discovered"]
    assert [(d["id"], d["status"], d["hostname"], d["ip"], d["arch"]) for d in discovered] == [
        ("stranger-01", "Discovered", "stranger", "10.1.2.3", "arm64")
    ]


def test_unpaired_until_the_agent_registers(server: Harness, released: dict[str, str]) -> None:
    appliances = server.site("store-2")["appliances"]
    assert [(a["id"], a["status"], a["health"]) for a in appliances] == [
        ("store-2-edge", "Unpaired", "unknown")
    ]


def test_rotating_presents_the_current_token(server: Harness, released: dict[str, str]) -> None:
    agent = server.agent("grocery-1-edge")
    old = agent.token
    assert agent.desired().status_code == 200
    answer = agent.rotate()
    assert answer.status_code == 200
    assert answer.json()["rotated"] is True
    assert agent.token != old
    assert agent.desired().status_code == 200
    stale = agent.http.get("/v1/desired", headers={"Authorization": f"Bearer {old}"})
    assert stale.status_code == 401
    assert stale.headers["WWW-Authenticate"] == "Bearer"


def test_registering_again_with_the_bootstrap_token_is_409_and_the_token_keeps_working(
    server: Harness, released: dict[str, str]
) -> None:
    agent = server.agent("grocery-1-edge")
    old = agent.token
    again = agent.register()
    assert again.status_code == 409
    assert again.json()["detail"] == (
        "grocery-1-edge is registered already: its current token rotates it, or an admin "
        "resets it first (edgefleet appliance reset grocery-1-edge)"
    )
    assert agent.token == old
    assert agent.desired().status_code == 200


def test_an_agent_token_reads_and_writes_only_its_own_appliance(
    server: Harness, released: dict[str, str]
) -> None:
    a = server.agent("grocery-1-edge")
    b = server.agent("store-2-edge")
    # asking for another appliance in every way an attacker might: still one's own
    for params, extra in [
        ({"appliance": "store-2-edge"}, {}),
        ({}, {"X-Appliance": "store-2-edge"}),
    ]:
        answer = a.http.get("/v1/desired", params=params, headers={**a.auth, **extra})
        assert answer.json()["appliance"] == "grocery-1-edge"
    a.report(released["grocery-1-edge"], health="unhealthy").raise_for_status()
    b.report(released["store-2-edge"]).raise_for_status()
    health = {
        x["id"]: x["health"] for s in ("grocery-1", "store-2") for x in server.site(s)["appliances"]
    }
    assert health == {"grocery-1-edge": "unhealthy", "store-2-edge": "healthy"}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer forged-token-that-was-never-issued",
        "Bearer " + "x" * 5000,
        "Bearer bootstrap-token-for-tests-0123456789",  # the bootstrap token is not an agent's
    ],
)
def test_absent_or_forged_tokens_get_401(
    server: Harness, released: dict[str, str], authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert server.http.get("/v1/desired", headers=headers).status_code == 401
    status = server.http.post("/v1/status", headers=headers, json={"health": "healthy"})
    assert status.status_code == 401


@pytest.mark.parametrize("token", [None, "wrong-bootstrap-token-0000000000"])
def test_registration_needs_the_bootstrap_token(
    server: Harness, released: dict[str, str], token: str | None
) -> None:
    agent = Agent(server.base_url, "grocery-1-edge", bootstrap=token or "")
    try:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        answer = agent.http.post("/v1/register", headers=headers, json={"applianceId": "x"})
        assert answer.status_code == 401
        assert "discovered" not in json.dumps(server.fleet()["discovered"])
    finally:
        agent.close()


def _bad_bodies() -> list[tuple[str, bytes, str]]:
    deep = b"[" * 100_000 + b"]" * 100_000
    return [
        ("not json", b"{not json", "application/json"),
        ("wrong type", b'{"health": 7}', "application/json"),
        ("unknown field", b'{"health": "healthy", "rootkit": true}', "application/json"),
        ("bad digest", b'{"health": "healthy", "appliedDigest": "md5:00"}', "application/json"),
        (
            "bad phase",
            b'{"health":"healthy","clusters":[{"name":"c","phase":"Exploded"}]}',
            "application/json",
        ),
        (
            "progress over 100",
            b'{"health":"healthy","clusters":[{"name":"c","phase":"Running",'
            b'"tasks":[{"name":"t","state":"running","progress":101}]}]}',
            "application/json",
        ),
        ("array", b"[]", "application/json"),
        ("nested too deep", deep, "application/json"),
        ("not utf-8", b'{"health": "\xff\xfe"}', "application/json"),
        ("form", b"health=healthy", "application/x-www-form-urlencoded"),
        ("empty", b"", "application/json"),
        (
            "oversized",
            b'{"health": "healthy", "x": "' + b"a" * (2 * 1024 * 1024) + b'"}',
            "application/json",
        ),
    ]


@pytest.mark.parametrize("name,body,content_type", _bad_bodies(), ids=[b[0] for b in _bad_bodies()])
def test_malformed_or_oversized_status_bodies_get_4xx(
    server: Harness, released: dict[str, str], name: str, body: bytes, content_type: str
) -> None:
    agent = server.agent("grocery-1-edge")
    answer = agent.http.post(
        "/v1/status", content=body, headers={**agent.auth, "Content-Type": content_type}
    )
    assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text[:200])
    if name == "oversized":
        assert answer.status_code == 413
    assert len(answer.content) < 10_000  # the input is never echoed back


def test_oversized_chunked_body_without_length_gets_413(
    server: Harness, released: dict[str, str]
) -> None:
    agent = server.agent("grocery-1-edge")

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"a" * 65536

    answer = agent.http.post("/v1/status", content=chunks(), headers=agent.auth)
    assert answer.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        {
            "applianceId": "../../etc/passwd",
            "hostname": "h",
            "ip": "10.0.0.1",
            "arch": "amd64",
            "agentVersion": "1",
        },
        {
            "applianceId": "a1",
            "hostname": "h",
            "ip": "not-an-ip",
            "arch": "amd64",
            "agentVersion": "1",
        },
        {
            "applianceId": "a1",
            "hostname": "h",
            "ip": "10.0.0.1",
            "arch": "sparc",
            "agentVersion": "1",
        },
        {"applianceId": "a1"},
    ],
)
def test_malformed_registrations_get_422(
    server: Harness, released: dict[str, str], body: dict[str, str]
) -> None:
    answer = server.http.post(
        "/v1/register", json=body, headers={"Authorization": f"Bearer {BOOTSTRAP}"}
    )
    assert answer.status_code == 422


@pytest.mark.parametrize("wait", ["-1", "100000", "soon", "nan"])
def test_bad_wait_gets_422(server: Harness, released: dict[str, str], wait: str) -> None:
    agent = server.agent("grocery-1-edge")
    answer = agent.http.get("/v1/desired", params={"wait": wait}, headers=agent.auth)
    assert answer.status_code == 422


def test_unknown_site_is_404(server: Harness, released: dict[str, str]) -> None:
    assert server.http.get("/v1/sites/nowhere").status_code == 404
    assert server.http.get("/v1/sites/..%2F..%2Fetc").status_code in (404, 422)


def test_healthz_and_openapi(server: Harness) -> None:
    assert server.http.get("/healthz").json() == {
        "status": "ok",
        "store": "sqlite",
        "reconciling": False,  # the test server runs no reconcile loop
    }
    paths = set(server.http.get("/openapi.json").json()["paths"])
    assert {
        "/v1/register",
        "/v1/desired",
        "/v1/status",
        "/v1/fleet",
        "/v1/sites/{site}",
        "/v1/hooks/git",
        "/healthz",
        "/metrics",
    } <= paths


def test_server_listens_on_loopback_only(server: Harness) -> None:
    assert server.base_url.startswith("http://127.0.0.1:")
    with pytest.raises(httpx.TransportError):
        httpx.get(server.base_url.replace("127.0.0.1", "127.0.0.2") + "/healthz", timeout=1)
