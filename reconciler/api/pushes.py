"""Push webhooks from GitHub and Gitea: signature check and the event handed to the loop.

Both sign the raw body with HMAC-SHA256 and the shared secret: GitHub as
``X-Hub-Signature-256: sha256=<hex>``, Gitea as ``X-Gitea-Signature: <hex>``. A request
whose signature does not verify is refused before anything else happens, so a forged or
replayed-with-a-bad-signature request never triggers a fetch.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PushEvent:
    """What a verified webhook tells the loop. Fields are best effort: the loop fetches
    and looks for itself; the webhook only says *now*."""

    provider: str  # github | gitea | unknown
    event: str  # push, ping, ...
    delivery: str | None
    ref: str | None
    after: str | None
    repository: str | None


def signature_ok(secret: bytes, body: bytes, headers: Mapping[str, str]) -> bool:
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    github = headers.get("x-hub-signature-256")
    if github is not None:
        scheme, _, given = github.partition("=")
        return scheme == "sha256" and hmac.compare_digest(given.strip().lower(), expected)
    gitea = headers.get("x-gitea-signature")
    if gitea is not None:
        return hmac.compare_digest(gitea.strip().lower(), expected)
    return False


def push_event(body: bytes, headers: Mapping[str, str]) -> PushEvent:
    if "x-github-event" in headers:
        provider, event = "github", headers["x-github-event"]
        delivery = headers.get("x-github-delivery")
    elif "x-gitea-event" in headers:
        provider, event = "gitea", headers["x-gitea-event"]
        delivery = headers.get("x-gitea-delivery")
    else:
        provider, event, delivery = "unknown", "push", None
    payload = _json(body)
    repository = payload.get("repository")
    return PushEvent(
        provider=provider,
        event=event[:64],
        delivery=delivery[:128] if delivery else None,
        ref=_text(payload.get("ref")),
        after=_text(payload.get("after")),
        repository=_text(repository.get("full_name")) if isinstance(repository, dict) else None,
    )


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value[:256] if isinstance(value, str) else None
