"""The agent endpoints: ``POST /v1/register``, ``GET /v1/desired``, ``POST /v1/status``.

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
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.contract import DesiredState, StatusReport

from ..delivery import AgentFacts
from .auth import agent_of, agent_token, bearer, bootstrap_token
from .errors import ERRORS, NotFound
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

    def bootstrap(request: Request) -> str:
        token = bearer(request)
        services.registrations.verify_bootstrap(token)
        return token

    @router.post(
        "/register", response_model=RegisterResponse, dependencies=[Security(bootstrap_token)]
    )
    def register(
        body: RegisterRequest, token: Annotated[str, Depends(bootstrap)]
    ) -> RegisterResponse:
        """Exchange the bootstrap token and the appliance's facts for an agent token."""
        facts = AgentFacts(
            appliance=body.applianceId,
            hostname=body.hostname,
            ip=body.ip,
            arch=body.arch,
            agent_version=body.agentVersion,
        )
        done = services.registrations.register(facts, bootstrap_token=token)
        return RegisterResponse(
            applianceId=done.appliance,
            token=done.token,
            status="Ready" if done.declared else "Discovered",
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
        """This appliance's DesiredState with ``ETag: "<digest>"``. With ``If-None-Match``
        and ``?wait=N``, waits up to N seconds for a new state before answering 304; an
        appliance holds at most two such waits, a third answers the oldest."""
        known = _etags(request.headers.get("if-none-match", ""))
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
                    if served is not None and not _matches(served.digest, known):
                        return Response(
                            served.body,
                            media_type="application/json",
                            headers=_tag(served.digest),
                        )
                    remaining = deadline - loop.time()
                    if remaining <= 0 or services.notifier.closed or ended.done():
                        break
                    gone = gone or asyncio.ensure_future(_disconnected(request, ended))
                    if not await subscription.wait(remaining, unless=gone):
                        break
            finally:
                if gone is not None:
                    gone.cancel()
        if served is None:
            raise NotFound(f"no desired state for {appliance}: not declared or not released yet")
        return Response(status_code=304, headers=_tag(served.digest))

    @router.post("/status", status_code=202, response_model=Accepted, dependencies=as_agent)
    def status(report: StatusReport, appliance: Annotated[str, Depends(agent)]) -> Accepted:
        """The agent's applied digest, cluster phases, tasks, events and health."""
        services.rollout.accept_report(appliance, report)
        return Accepted()

    return router


async def _disconnected(request: Request, ended: asyncio.Future[None]) -> None:
    """Return once the client has gone (a long-poll then frees its slot at once instead of
    at the end of its wait) or a newer long-poll of the appliance has ended this one."""

    async def hung_up() -> None:
        while (await request.receive())["type"] != "http.disconnect":
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
