"""``POST /v1/hooks/git``: a signed push notification makes the loop fetch now.

A redelivered push (same delivery ID) triggers again: fetching is idempotent, and an
operator's "redeliver" is meant to make the reconciler look now.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from .errors import NotFound, Unauthorized
from .pushes import push_event, signature_ok
from .services import Services

log = logging.getLogger(__name__)


class HookAnswer(BaseModel):
    status: str  # accepted | ignored (not a push: ping and the like)


def hook_routes(services: Services) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["hooks"])

    @router.post("/hooks/git", status_code=202, response_model=HookAnswer)
    async def git_hook(request: Request) -> HookAnswer:
        """GitHub (``X-Hub-Signature-256``) or Gitea (``X-Gitea-Signature``) push webhook,
        HMAC-SHA256 over the raw body with the shared secret."""
        if services.webhook_secret is None:
            raise NotFound("no webhook secret configured")
        body = await request.body()
        if not signature_ok(services.webhook_secret, body, request.headers):
            raise Unauthorized("webhook signature missing or wrong")
        event = push_event(body, request.headers)
        if event.event != "push":
            return HookAnswer(status="ignored")
        log.info("push webhook from %s: %s %s", event.provider, event.ref, event.after)
        if services.on_push is not None:
            await run_in_threadpool(services.on_push, event)
        return HookAnswer(status="accepted")

    return router
