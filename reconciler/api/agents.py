"""The agent endpoints: ``POST /v1/register``, ``GET /v1/desired``, ``POST /v1/status``,
``POST /v1/leases`` and ``DELETE /v1/leases/{cluster}``.

Handlers parse, call the rollout package and map its answer to a status code. The desired
state long-poll waits on the notifier, never on the database.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at runtime, and
# they name dependencies local to the route builder.

import asyncio
import ipaddress
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.types import Receive, Scope, Send

from agent.contract import DesiredState, StatusReport
from agent.signatures import HEADER as SIGNATURE_HEADER

from ..delivery import AgentFacts, Body, body_size
from .auth import agent_of, agent_token, bearer, bootstrap_token
from .errors import ERRORS, ErrorBody, NotFound
from .services import Services

ApplianceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")]


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    applianceId: ApplianceId
    hostname: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")]
    ip: str
    arch: Literal["amd64", "arm64"]
    agentVersion: Annotated[str, Field(pattern=r"^[\x21-\x7e][\x20-\x7e]{0,63}$")]

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        return str(ipaddress.ip_address(value))


class RegisterResponse(BaseModel):
    applianceId: str
    token: str
    status: Literal["Ready", "Discovered"]
    rotated: bool = False  # the request carried the appliance's current token


class LeaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    purpose: Literal["patch"] = "patch"
    seconds: Annotated[float, Field(gt=0, le=3600)] = 600


class LeaseResponse(BaseModel):
    cluster: str
    granted: bool
    holder: str  # the appliance that holds it (this one when granted)
    expiresAt: float  # seconds since the epoch


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"


def agent_routes(services: Services) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["agents"], responses={k: ERRORS[k] for k in (401, 413)})
    as_agent = [Security(agent_token)]

    async def agent(request: Request) -> str:
        # a token seen moments ago is answered on the event loop; only a new one costs a
        # store read in a worker thread
        found = services.registrations.remembered(bearer(request))
        if found is not None:
            return found
        return await run_in_threadpool(agent_of, services.registrations, request)

    async def registering(request: Request) -> str:
        """The request's token. A registration whose body does not parse is refused as
        unauthorized first (401, not 422) when the token could register nothing."""
        token = bearer(request)
        try:
            RegisterRequest.model_validate_json(await request.body())
        except ValidationError:
            await run_in_threadpool(
                services.registrations.check_credential, token, address=_address(request)
            )
        return token

    @router.post(
        "/register",
        response_model=RegisterResponse,
        dependencies=[Security(bootstrap_token)],
        responses={
            403: {"model": ErrorBody, "description": "a token bound to another appliance"},
            409: {"model": ErrorBody, "description": "the appliance is registered already"},
            429: {"model": ErrorBody, "description": "too many discovered, or from here"},
        },
    )
    def register(
        body: RegisterRequest, request: Request, token: Annotated[str, Depends(registering)]
    ) -> RegisterResponse:
        """Exchange a token and the appliance's facts for a new agent token. The token is
        the fleet's bootstrap token or a one-time enrolment token of this appliance (its
        first registration, or the first after an admin reset it), or the appliance's
        current agent token (a rotation: the old one stops working). An appliance that is
        registered already is refused with 409 and keeps its token; too many discovered
        appliances, or registrations from one address, get 429."""
        facts = AgentFacts(
            appliance=body.applianceId,
            hostname=body.hostname,
            ip=body.ip,
            arch=body.arch,
            agent_version=body.agentVersion,
        )
        done = services.registrations.register(facts, credential=token, address=_address(request))
        return RegisterResponse(
            applianceId=done.appliance,
            token=done.token,
            status="Ready" if done.declared else "Discovered",
            rotated=done.rotated,
        )

    @router.get(
        "/desired",
        response_model=DesiredState,
        responses={304: {"description": "unchanged (If-None-Match)"}, 404: ERRORS[404]},
        dependencies=as_agent,
    )
    async def desired(
        request: Request,
        appliance: Annotated[str, Depends(agent)],
        wait: Annotated[float, Query(ge=0, le=services.max_wait)] = 0,
    ) -> Response:
        """This appliance's DesiredState with ``ETag: "<digest>"`` (``"<digest>+<joins>"``
        when it carries its clusters' joins: their token and the server to join, which
        change without the digest) and, signed with the reconciler's Ed25519 key,
        ``Edgefleet-Signature: ed25519:<key id> <base64>`` over the body's bytes. With
        ``If-None-Match`` and ``?wait=N``, waits up to N seconds for a new state before
        answering 304; an appliance holds at most two such waits, a third answers the
        oldest."""
        return await answer_desired(
            services, appliance, request.headers.get("if-none-match", ""), wait, request.receive
        )

    @router.post("/status", status_code=202, response_model=Accepted, dependencies=as_agent)
    async def status(report: StatusReport, appliance: Annotated[str, Depends(agent)]) -> Accepted:
        """The agent's applied digest, cluster phases, tasks, events and health."""
        await take_report(services, appliance, report)
        return Accepted()

    @router.post(
        "/leases",
        response_model=LeaseResponse,
        dependencies=as_agent,
        responses={403: {"model": ErrorBody, "description": "not a member of the cluster"}},
    )
    def lease(body: LeaseRequest, appliance: Annotated[str, Depends(agent)]) -> LeaseResponse:
        """Ask for (or renew) the lease that lets this appliance take the cluster's nodes
        down, one member appliance at a time (an OS patch's control-plane reboots).
        ``granted: false`` names the member that holds it and until when."""
        found = services.rollout.take_lease(
            appliance, body.cluster, purpose=body.purpose, seconds=body.seconds
        )
        return LeaseResponse(
            cluster=body.cluster,
            granted=found.granted,
            holder=found.holder,
            expiresAt=found.expires_at,
        )

    @router.delete("/leases/{cluster}", status_code=204, dependencies=as_agent)
    def release(cluster: str, appliance: Annotated[str, Depends(agent)]) -> Response:
        """Give the cluster's lease back (nothing happens when this appliance holds none)."""
        services.rollout.give_back_lease(appliance, cluster)
        return Response(status_code=204)

    return router


async def answer_desired(
    services: Services, appliance: str, if_none_match: str, wait: float, receive: Receive
) -> Response:
    """``GET /v1/desired`` of an authenticated appliance (here and in :mod:`.agentpath`);
    raises NotFound when it has no state."""
    known = _etags(if_none_match)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    gone: asyncio.Task[None] | None = None  # the client hung up, or a newer poll came
    with (
        services.notifier.subscribe(appliance) as subscription,
        services.polls.opened(appliance, waits=wait > 0) as ended,
    ):
        try:
            while True:
                fresh, served = services.documents.remembered(appliance)
                if not fresh:
                    served = await run_in_threadpool(services.documents.current, appliance)
                if served is not None and not _matches(served.tag, known):
                    headers = _tag(served.tag)
                    if served.signature is not None:
                        headers[SIGNATURE_HEADER] = served.signature
                    return Document(served.body, headers)
                remaining = deadline - loop.time()
                if remaining <= 0 or services.notifier.closed or ended.done():
                    break
                gone = gone or asyncio.ensure_future(_disconnected(receive, ended))
                if not await subscription.wait(remaining, unless=gone):
                    break
        finally:
            if gone is not None:
                gone.cancel()
    if served is None:
        raise NotFound(f"no desired state for {appliance}: not declared or not released yet")
    return Response(status_code=304, headers=_tag(served.tag))


class Document(Response):
    """A served document, sent in its parts as they are kept (none is copied whole)."""

    media_type = "application/json"

    def __init__(self, parts: Body, headers: dict[str, str]) -> None:
        self.parts = parts
        super().__init__(headers={**headers, "content-length": str(body_size(parts))})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        last = len(self.parts) - 1
        for i, part in enumerate(self.parts):
            await send({"type": "http.response.body", "body": part, "more_body": i < last})


async def take_report(services: Services, appliance: str, report: StatusReport) -> None:
    """``POST /v1/status`` of an authenticated appliance (here and in :mod:`.agentpath`).
    The rollout's own thread writes it with the reports arriving together: a wave's
    thousands of reports take no worker thread each."""
    rollout = services.rollout
    if await rollout.report_soon(appliance, report):
        if rollout.tick_waits():  # the first few wait for the tick that covers them
            await run_in_threadpool(rollout.tick_wanted)
        else:
            rollout.tick_wanted(wait=False)


def _address(request: Request) -> str:
    """The client's address, as this server sees it (a reverse proxy's, behind one)."""
    return request.client.host if request.client is not None else "unknown"


async def _disconnected(receive: Receive, ended: asyncio.Future[None]) -> None:
    """Return once the client has gone (a long-poll then frees its slot at once instead of
    at the end of its wait) or a newer long-poll of the appliance has ended this one."""

    async def hung_up() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    receiving = asyncio.ensure_future(hung_up())
    try:
        await asyncio.wait({receiving, ended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        receiving.cancel()


def _etags(header: str) -> set[str]:
    tags = set()
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tags.add(tag.strip('"'))
    return tags - {""}


def _matches(digest: str, known: set[str]) -> bool:
    return digest in known or "*" in known


def _tag(digest: str) -> dict[str, str]:
    return {"ETag": f'"{digest}"', "Cache-Control": "no-cache"}
