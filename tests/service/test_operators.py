"""Operator access on the real server: who may read and who may act (401 without a known
token, 403 with too small a role), ``--metrics-public``, the OpenAPI security schemes, the
token file re-read on SIGHUP, and ``serve``'s one-line configuration errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.api import create_app
from reconciler.api.operators import OperatorTokenError, OperatorTokens, parse_tokens
from reconciler.rollout import RolloutService
from reconciler.store import Store
from tests.support.operators import ADMIN, ADMIN_TOKEN, VIEWER, VIEWER_TOKEN
from tests.support.service import Harness

from .agents import BOOTSTRAP
from .clocks import ManualClock
from .fleets import release, revision, site
from .servers import ServerThread
from .serving import Served, args

READS = [("GET", "/v1/fleet"), ("GET", "/v1/sites/grocery-1"), ("GET", "/v1/revisions"),
         ("GET", "/metrics")]  # fmt: skip
ACTIONS = [("POST", "/v1/rollout/pause"), ("POST", "/v1/rollout/resume"),
           ("POST", "/v1/appliances/grocery-1-edge/reset"),
           ("POST", "/v1/appliances/grocery-1-edge/enroll")]  # fmt: skip
NOBODY = {"Authorization": "Bearer " + "x" * 40}


@pytest.fixture
def released(server: Harness) -> None:
    server.rollout.record_release(release(revision("r1"), [site("grocery-1", ring="canary")]))


@pytest.mark.parametrize("method,path", READS + ACTIONS)
@pytest.mark.parametrize(
    "who,headers",
    [("nobody", {}), ("unknown token", NOBODY), ("agent", None), ("viewer", VIEWER),
     ("admin", ADMIN)],
)  # fmt: skip
def test_who_may_read_and_who_may_act(
    server: Harness,
    released: None,
    method: str,
    path: str,
    who: str,
    headers: dict[str, str] | None,
) -> None:
    if headers is None:  # an agent's own token is no operator token
        headers = server.agent("grocery-1-edge").auth
    answer = httpx.request(method, server.base_url + path, headers=headers, timeout=10)
    acting = method == "POST"
    expected = {
        "nobody": 401,
        "unknown token": 401,
        "agent": 401,
        "viewer": 403 if acting else 200,
        "admin": 200,
    }[who]
    assert answer.status_code == expected, answer.text
    if expected == 401:
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["detail"] in ("a bearer token is required", "operator token refused")
    if expected == 403:
        assert answer.json()["detail"] == "this needs an admin token (vera is a viewer)"


def test_promote_needs_an_admin_and_a_wave(server: Harness, released: None) -> None:
    body = {"wave": "everyone"}
    assert server.http.post("/v1/rollout/promote", json=body).status_code == 403
    assert server.admin.post("/v1/rollout/promote", json={}).status_code == 422
    answer = server.admin.post("/v1/rollout/promote", json={"wave": "nowhere"})
    assert answer.status_code == 409
    assert answer.json()["detail"] == "no wave 'nowhere' (waves: canary, everyone)"


@pytest.fixture
def public_metrics(tmp_path: Path) -> Iterator[str]:
    store = Store(f"sqlite:///{tmp_path / 'db'}")
    clock = ManualClock()
    app = create_app(
        store=store,
        rollout=RolloutService(store=store, clock=clock),
        clock=clock,
        bootstrap_token=BOOTSTRAP,
        tick_interval=None,
        metrics_public=True,
    )
    running = ServerThread(app).start()
    try:
        yield running.base_url
    finally:
        running.stop()
        store.close()


def test_metrics_public_opens_metrics_only(public_metrics: str) -> None:
    assert httpx.get(public_metrics + "/metrics").status_code == 200
    assert httpx.get(public_metrics + "/v1/fleet").status_code == 401
    # no operator tokens at all: every operator route refuses
    assert httpx.get(public_metrics + "/v1/fleet", headers=VIEWER).status_code == 401


def test_openapi_declares_the_bearer_schemes_and_error_answers(server: Harness) -> None:
    spec = server.http.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {name: s["scheme"] for name, s in schemes.items()} == {
        "agentToken": "bearer",
        "bootstrapToken": "bearer",
        "operatorToken": "bearer",
    }
    paths = spec["paths"]
    for path, method, scheme in [
        ("/v1/fleet", "get", "operatorToken"),
        ("/v1/sites/{site}", "get", "operatorToken"),
        ("/v1/revisions", "get", "operatorToken"),
        ("/v1/rollout/pause", "post", "operatorToken"),
        ("/v1/rollout/promote", "post", "operatorToken"),
        ("/v1/appliances/{appliance}/reset", "post", "operatorToken"),
        ("/v1/appliances/{appliance}/enroll", "post", "operatorToken"),
        ("/metrics", "get", "operatorToken"),
        ("/v1/desired", "get", "agentToken"),
        ("/v1/status", "post", "agentToken"),
        ("/v1/register", "post", "bootstrapToken"),
    ]:
        operation = paths[path][method]
        assert operation["security"] == [{scheme: []}], path
        assert {"401"} <= set(operation["responses"]), path
    for path in ("/v1/fleet", "/v1/sites/{site}", "/v1/rollout/pause"):
        method = "post" if "rollout" in path else "get"
        assert {"401", "403", "404", "413"} <= set(paths[path][method]["responses"])


def test_revisions_lists_commits_with_their_result(server: Harness, released: None) -> None:
    errors = ["sites/x/site.yaml:3: bad"]
    server.rollout.record_failure(revision("bad"), errors)
    answer = server.http.get("/v1/revisions").json()["revisions"]
    assert [(r["short"], r["outcome"], r["rollout"]) for r in answer] == [
        (revision("bad")[:7], "failed", None),
        (revision("r1")[:7], "good", "running"),
    ]
    assert answer[0]["errors"] == errors
    assert answer[1]["sitesChanged"] == 1


@pytest.mark.parametrize(
    "text,error",
    [
        ("viewer vera short", "<f>:1: the token must be at least 32 characters"),
        (f"owner olga {VIEWER_TOKEN}", "<f>:1: role must be viewer or admin (got 'owner')"),
        (f"# c\n\nviewer vera {VIEWER_TOKEN} extra", "<f>:3: expected ROLE NAME TOKEN"),
        (f"viewer vera {VIEWER_TOKEN}\nadmin vera {ADMIN_TOKEN}", "<f>:2: vera is listed twice"),
        (
            f"viewer v {VIEWER_TOKEN}\nadmin a {VIEWER_TOKEN}",
            "<f>:2: the same token is listed twice",
        ),
        (f"viewer b/ad {VIEWER_TOKEN}", "<f>:1: 'b/ad' is not a valid name"),
    ],
)
def test_token_file_errors_name_the_line_and_never_the_token(text: str, error: str) -> None:
    with pytest.raises(OperatorTokenError) as raised:
        parse_tokens(text, source="<f>")
    assert str(raised.value) == error
    assert VIEWER_TOKEN not in str(raised.value) and ADMIN_TOKEN not in str(raised.value)


def test_tokens_are_matched_exactly() -> None:
    tokens = OperatorTokens.of(("viewer", "vera", VIEWER_TOKEN), ("admin", "ada", ADMIN_TOKEN))
    assert tokens.authenticate(VIEWER_TOKEN) is not None
    assert tokens.authenticate(ADMIN_TOKEN[:-1]) is None
    assert tokens.authenticate(ADMIN_TOKEN + "x") is None
    assert tokens.authenticate("") is None


def serve(served: Served, *extra: str) -> subprocess.CompletedProcess[str]:  # noqa: F811
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "serve", served.repo, *extra],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_serve_configuration_errors_are_one_line(served: Served) -> None:  # noqa: F811
    base = args(served)
    bad = served.work / "bad-operators"
    bad.write_text("viewer vera short\n")
    for extra, message in [
        (["--operator-token-file", str(bad)], f"{bad}:1: the token must be at least 32"),
        (
            ["--operator-token-file", str(served.work / "missing")],
            "No such file or directory",
        ),
    ]:
        at = base.index("--operator-token-file")
        answer = serve(served, *base[:at], *base[at + 2 :], *extra)
        assert answer.returncode == 1, answer.stderr
        assert message in answer.stderr
        assert len(answer.stderr.strip().splitlines()) == 1, answer.stderr
        assert "Traceback" not in answer.stderr


def test_a_port_in_use_is_one_line_and_exit_1(served: Served) -> None:  # noqa: F811
    served.start(*args(served))
    answer = serve(served, *args(served), "--db", f"sqlite:///{served.work / 'other.db'}")
    assert answer.returncode == 1
    assert answer.stderr.strip().startswith(f"edgefleet: cannot listen on 127.0.0.1:{served.port}")
    assert len(answer.stderr.strip().splitlines()) == 1


def test_sighup_reads_the_token_file_again(served: Served) -> None:  # noqa: F811
    served.start(*args(served))
    url = f"{served.url}/v1/fleet"
    assert httpx.get(url, headers=VIEWER).status_code == 200
    newcomer = "a-newly-issued-viewer-token-0123456789"
    (served.work / "operators").write_text(f"viewer nina {newcomer}\nadmin ada {ADMIN_TOKEN}\n")
    assert served.process is not None
    os.kill(served.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    fresh = {"Authorization": f"Bearer {newcomer}"}
    while httpx.get(url, headers=fresh).status_code != 200:
        assert time.monotonic() < deadline, served.log()
        time.sleep(0.1)
    assert httpx.get(url, headers=VIEWER).status_code == 401  # vera's token is gone
    # a file that no longer parses keeps the tokens in force
    (served.work / "operators").write_text("viewer nina short\n")
    os.kill(served.process.pid, signal.SIGHUP)
    time.sleep(0.5)
    assert httpx.get(url, headers=fresh).status_code == 200
    assert served.process.poll() is None
    assert "operator tokens not reloaded" in served.log()
    assert newcomer not in served.log()
