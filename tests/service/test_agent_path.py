"""The agents' busiest requests are answered before the web framework (reconciler/api/
agentpath.py): the same bytes as the framework's routes, and anything out of the plain case
handed on to them with its body intact."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from starlette.types import Message, Receive, Scope, Send

from reconciler.api import create_app
from reconciler.rollout import RolloutService
from reconciler.store import Store

from .agents import BOOTSTRAP
from .clocks import ManualClock
from .conftest import Harness
from .fleets import digests, release, revision, site

SITES = [site("grocery-1", ring="canary"), site("store-2")]
FRAMEWORK = 599  # what the stand-in for the framework answers


def answer_of(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in ("date", "server")]
    return response.status_code, headers, response.content


def test_both_paths_answer_the_same_bytes(server: Harness) -> None:
    rel = release(revision("r1"), SITES)
    server.rollout.record_release(rel)
    agent = server.agent("grocery-1-edge")
    stranger = server.agent("stranger-01")  # discovered: no state
    etag = f'"{digests(rel)["grocery-1-edge"]}"'
    # an extra query parameter or a JSON media type of another name is not the plain case:
    # the framework answers it, and the route ignores the one and reads the other as JSON
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"params": {}}, {"params": {"x": "1"}}),
        (
            {"params": {"wait": "0"}, "headers": {"If-None-Match": etag}},
            {"params": {"wait": "0", "x": "1"}, "headers": {"If-None-Match": etag}},
        ),
        (
            {"params": {"wait": "0.2"}, "headers": {"If-None-Match": etag}},
            {"params": {"wait": "0.2", "x": "1"}, "headers": {"If-None-Match": etag}},
        ),
    ]
    for plain, handed_on in pairs:
        fast = agent.http.get("/v1/desired", **_with_auth(plain, agent.auth))
        framework = agent.http.get("/v1/desired", **_with_auth(handed_on, agent.auth))
        assert fast.status_code in (200, 304)
        assert answer_of(fast) == answer_of(framework)
    missing = [
        stranger.http.get("/v1/desired", headers=stranger.auth, params=params)
        for params in ({}, {"x": "1"})
    ]
    assert missing[0].status_code == 404
    assert answer_of(missing[0]) == answer_of(missing[1])
    body = json.dumps({"appliedDigest": digests(rel)["grocery-1-edge"], "health": "healthy"})
    reports = [
        agent.http.post(
            "/v1/status", content=body, headers={**agent.auth, "Content-Type": media_type}
        )
        for media_type in ("application/json", "application/vnd.edgefleet+json")
    ]
    assert reports[0].status_code == 202
    assert answer_of(reports[0]) == answer_of(reports[1])
    health = server.site("grocery-1")["appliances"][0]["health"]
    assert health == "healthy"


def _with_auth(request: dict[str, Any], auth: dict[str, str]) -> dict[str, Any]:
    return {**request, "headers": {**request.get("headers", {}), **auth}}


async def framework_stand_in(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 599 with the body it was handed."""
    body = b""
    while True:
        message: Message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": FRAMEWORK, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_the_plain_case_never_reaches_the_framework_and_the_rest_gets_its_body(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    rollout = RolloutService(store=store, clock=clock)
    app = create_app(
        store=store,
        rollout=rollout,
        clock=clock,
        bootstrap_token=BOOTSTRAP,
        tick_interval=None,
        max_body_bytes=4096,
    )
    rel = release(revision("r1"), SITES)
    rollout.record_release(rel)
    digest = digests(rel)["grocery-1-edge"]

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edgefleet") as http:
            registered = await http.post(
                "/v1/register",
                headers={"Authorization": f"Bearer {BOOTSTRAP}"},
                json={
                    "applianceId": "grocery-1-edge",
                    "hostname": "grocery-1-edge",
                    "ip": "192.168.10.20",
                    "arch": "amd64",
                    "agentVersion": "0.1.0",
                },
            )
            auth = {"Authorization": f"Bearer {registered.raise_for_status().json()['token']}"}
            assert (await http.get("/v1/desired", headers=auth)).status_code == 200
            app.middleware_stack = framework_stand_in  # from here on the framework is gone
            plain = await http.get("/v1/desired", headers=auth)
            assert plain.status_code == 200 and plain.json()["digest"] == digest
            unchanged = {**auth, "If-None-Match": f'"{digest}"'}
            held = await http.get("/v1/desired", headers=unchanged, params={"wait": "0.1"})
            assert held.status_code == 304
            report = {"appliedDigest": digest, "health": "healthy"}
            posted = await http.post("/v1/status", headers=auth, json=report)
            assert (posted.status_code, posted.json()) == (202, {"status": "accepted"})
            # not the plain case: handed on, the body read so far given back whole
            for params in ({"wait": "abc"}, {"wait": "99999"}, {"wait": "1", "x": "2"}):
                answer = await http.get("/v1/desired", headers=auth, params=params)
                assert answer.status_code == FRAMEWORK, params
            stranger = {"Authorization": "Bearer not-a-token-anyone-was-given"}
            assert (await http.get("/v1/desired", headers=stranger)).status_code == FRAMEWORK
            for body in (b'{"health": "sunny"}', b"[" * 100, b"x" * 10_000):
                answer = await http.post(
                    "/v1/status",
                    headers={**auth, "Content-Type": "application/json"},
                    content=body,
                )
                assert (answer.status_code, answer.content) == (FRAMEWORK, body)

            async def chunks() -> Any:
                for _ in range(10):  # 10,000 bytes in chunks, no length given
                    yield b" " * 1000

            answer = await http.post(
                "/v1/status", headers={**auth, "Content-Type": "application/json"}, content=chunks()
            )
            assert (answer.status_code, answer.content) == (FRAMEWORK, b" " * 10_000)

    try:
        asyncio.run(run())
    finally:
        store.close()
