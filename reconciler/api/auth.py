"""Bearer tokens from the ``Authorization`` header, and the agent a token belongs to."""

from __future__ import annotations

from fastapi import Request

from ..rollout import Registrations
from .errors import Unauthorized

MAX_TOKEN = 512


def bearer(request: Request) -> str:
    """The token of ``Authorization: Bearer <token>``; raises Unauthorized."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN:
        raise Unauthorized("a bearer token is required")
    return token


def agent_of(registrations: Registrations, request: Request) -> str:
    """The appliance whose agent token the request carries."""
    return registrations.authenticate(bearer(request))
