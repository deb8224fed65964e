"""Who is asking: bearer tokens of agents, of the bootstrap, and of operators.

Each kind is declared to OpenAPI as its own bearer scheme. Operator routes depend on
:func:`operator_access` with the role they need: 401 without a known token, 403 with a
token of too small a role.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at runtime.

from collections.abc import Callable
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..delivery import Registrations
from .errors import Forbidden, Unauthorized
from .operators import Operator, OperatorTokens, Role

MAX_TOKEN = 512

agent_token = HTTPBearer(
    scheme_name="agentToken",
    description="An agent's own token, from POST /v1/register: its appliance's state only.",
    auto_error=False,
)
bootstrap_token = HTTPBearer(
    scheme_name="bootstrapToken",
    description=(
        "The fleet's bootstrap token or a one-time enrolment token (pairs an appliance), or "
        "the appliance's own agent token (rotates it)."
    ),
    auto_error=False,
)
operator_token = HTTPBearer(
    scheme_name="operatorToken",
    description="An operator token from --operator-token-file: viewer reads, admin also acts.",
    auto_error=False,
)


def bearer(request: Request) -> str:
    """The token of ``Authorization: Bearer <token>``; raises Unauthorized."""
    return bearer_token(request.headers.get("authorization", ""))


def bearer_token(header: str) -> str:
    """The token of an ``Authorization`` header's ``Bearer <token>``; raises Unauthorized."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN:
        raise Unauthorized("a bearer token is required")
    return token


def agent_of(registrations: Registrations, request: Request) -> str:
    """The appliance whose agent token the request carries."""
    return registrations.authenticate(bearer(request))


def operator_access(tokens: OperatorTokens, role: Role) -> Callable[..., Operator]:
    """A dependency admitting operators of ``role`` (admins may do what viewers may)."""

    def check(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(operator_token)],
    ) -> Operator:
        operator = tokens.authenticate(bearer(request))
        if operator is None:
            raise Unauthorized("operator token refused")
        if not operator.may(role):
            raise Forbidden(f"this needs an {role} token ({operator.name} is a {operator.role})")
        return operator

    return check
