"""``POST /v1/hooks/git``: GitHub and Gitea signatures; a bad or missing signature is
refused with 401 and triggers nothing."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from .conftest import WEBHOOK_SECRET, Harness

PUSH = json.dumps(
    {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": "1a2b3c4d" * 5,
        "repository": {"full_name": "acme/edge-fleet"},
    }
).encode()


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github(
    body: bytes, signature: str | None, event: str = "push", delivery: str = "d-1"
) -> dict[str, str]:
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return headers


def gitea(
    body: bytes, signature: str | None, event: str = "push", delivery: str = "g-1"
) -> dict[str, str]:
    headers = {"X-Gitea-Event": event, "X-Gitea-Delivery": delivery}
    if signature is not None:
        headers["X-Gitea-Signature"] = signature
    return headers


def post(server: Harness, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return server.http.post(
        "/v1/hooks/git", content=body, headers={"Content-Type": "application/json", **headers}
    )


@pytest.mark.parametrize(
    "headers",
    [github(PUSH, "sha256=" + sign(PUSH)), gitea(PUSH, sign(PUSH))],
    ids=["github", "gitea"],
)
def test_a_signed_push_triggers_the_loop(server: Harness, headers: dict[str, str]) -> None:
    answer = post(server, PUSH, headers)
    assert answer.status_code == 202
    assert answer.json() == {"status": "accepted"}
    [event] = server.pushes
    assert (event.ref, event.after, event.repository) == (
        "refs/heads/main",
        "1a2b3c4d" * 5,
        "acme/edge-fleet",
    )
    assert event.provider in ("github", "gitea")


BAD = [
    ("github, no signature", github(PUSH, None)),
    ("github, wrong secret", github(PUSH, "sha256=" + sign(PUSH, "guessed-secret"))),
    ("github, sha1 scheme", github(PUSH, "sha1=" + sign(PUSH))),
    ("github, signature of another body", github(PUSH, "sha256=" + sign(PUSH + b" "))),
    ("github, garbage", github(PUSH, "sha256=zzzz")),
    ("gitea, no signature", gitea(PUSH, None)),
    ("gitea, wrong secret", gitea(PUSH, sign(PUSH, "guessed-secret"))),
    ("gitea, empty", gitea(PUSH, "")),
    ("no headers at all", {}),
]


@pytest.mark.parametrize("headers", [h for _, h in BAD], ids=[n for n, _ in BAD])
def test_a_bad_or_missing_signature_gets_401_and_triggers_nothing(
    server: Harness, headers: dict[str, str]
) -> None:
    for _ in range(3):  # replaying it changes nothing either
        answer = post(server, PUSH, headers)
        assert answer.status_code == 401
    assert server.pushes == []


def test_a_ping_triggers_nothing_and_a_redelivery_triggers_again(server: Harness) -> None:
    signature = "sha256=" + sign(PUSH)
    assert post(server, PUSH, github(PUSH, signature, event="ping")).json() == {"status": "ignored"}
    assert server.pushes == []
    assert post(server, PUSH, github(PUSH, signature)).json() == {"status": "accepted"}
    assert post(server, PUSH, github(PUSH, signature)).json() == {"status": "accepted"}
    assert len(server.pushes) == 2


def test_a_signed_body_that_is_not_json_still_triggers_a_fetch(server: Harness) -> None:
    body = b"payload=%7B%7D"
    answer = post(server, body, gitea(body, sign(body)))
    assert answer.status_code == 202
    assert server.pushes[0].ref is None


def test_an_oversized_webhook_gets_413(server: Harness) -> None:
    body = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    answer = post(server, body, github(body, "sha256=" + sign(body)))
    assert answer.status_code == 413
    assert server.pushes == []
