"""An admin's hand on enrolment: reset an appliance (its token stops working, its next
registration pairs it again) and issue a one-time enrolment token bound to its ID. Each is
recorded as an event naming the operator; the token is shown once, in the answer only."""

# No `from __future__ import annotations`: FastAPI reads these annotations at runtime, and
# they name dependencies local to the route builder.

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from .auth import operator_access
from .errors import ERRORS
from .operators import Operator
from .services import Services

ApplianceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")]
MIN_TTL = 60
MAX_TTL = 30 * 86_400


class ApplianceReset(BaseModel):
    applianceId: str
    registered: bool  # False: it had no registration to forget
    by: str


class EnrolmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttlSeconds: Annotated[int, Field(ge=MIN_TTL, le=MAX_TTL)] = 86_400


class EnrolmentToken(BaseModel):
    applianceId: str
    token: str  # shown once: only its hash is kept
    expiresAt: datetime
    declared: bool  # False: not in the fleet repository (yet); it registers as discovered
    by: str


def appliance_routes(services: Services) -> APIRouter:
    router = APIRouter(prefix="/v1/appliances", tags=["appliances"], responses=ERRORS)
    admin = Depends(operator_access(services.operators, "admin"))

    @router.post("/{appliance}/reset", response_model=ApplianceReset)
    async def reset(appliance: ApplianceId, operator: Annotated[Operator, admin]) -> ApplianceReset:
        """Forget the appliance's registration: its token stops working on every replica
        at once, and its next registration (bootstrap or enrolment token) pairs it again."""
        registered = await run_in_threadpool(
            lambda: services.registrations.reset(appliance, by=operator.name)
        )
        return ApplianceReset(applianceId=appliance, registered=registered, by=operator.name)

    @router.post("/{appliance}/enroll", response_model=EnrolmentToken)
    async def enroll(
        appliance: ApplianceId,
        operator: Annotated[Operator, admin],
        body: EnrolmentRequest | None = None,
    ) -> EnrolmentToken:
        """A one-time token that registers this appliance, and no other, until it expires
        (``ttlSeconds``, default a day); the installer takes it as --registration-token.
        An unused earlier token of the appliance stops working."""
        ttl = (body or EnrolmentRequest()).ttlSeconds
        issued = await run_in_threadpool(
            lambda: services.registrations.enrol(appliance, ttl=ttl, by=operator.name)
        )
        return EnrolmentToken(
            applianceId=appliance,
            token=issued.token,
            expiresAt=datetime.fromtimestamp(issued.expires_at, UTC),
            declared=issued.declared,
            by=operator.name,
        )

    return router
