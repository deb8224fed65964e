"""Operator endpoints: fleet and site status and recent revisions (viewer), and the hand on
the rollout: pause, resume, promote (admin). Each action is recorded as an event naming
the operator."""

# No `from __future__ import annotations`: FastAPI reads these annotations at runtime, and
# they name dependencies local to the route builder.

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ..store import SiteQuery
from ..views import PER_PAGE, FleetView, RevisionsView, RolloutView, SiteList, SiteView
from .auth import operator_access
from .errors import ERRORS, NotFound
from .operators import Operator
from .services import Services

SiteName = Annotated[str, Path(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]


class Promotion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wave: Annotated[str, Field(min_length=1, max_length=63)]


class RolloutAction(BaseModel):
    action: str  # pause | resume | promote
    changed: bool  # False: it was so already
    by: str
    rollout: RolloutView | None


def fleet_routes(services: Services) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=ERRORS)
    viewer = Depends(operator_access(services.operators, "viewer"))
    admin = Depends(operator_access(services.operators, "admin"))

    @router.get("/fleet", response_model=FleetView, tags=["fleet"], dependencies=[viewer])
    def fleet() -> FleetView:
        """Current and last failed revision, the rollout, every site and discovered agents."""
        return services.views.fleet()

    @router.get("/sites", response_model=SiteList, tags=["fleet"], dependencies=[viewer])
    def sites(
        q: Annotated[str, Query(max_length=100, description="part of a site or appliance")] = "",
        wave: Annotated[str | None, Query(max_length=63)] = None,
        state: Annotated[str | None, Query(max_length=16)] = None,
        health: Annotated[str | None, Query(pattern="^(healthy|unhealthy|unknown)$")] = None,
        label: Annotated[str | None, Query(max_length=200, description="KEY or KEY=VALUE")] = None,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    ) -> SiteList:
        """A page of the current rollout's sites, filtered, in wave order."""
        query = SiteQuery(
            state=state or None,
            health=health or None,
            label=SiteQuery.label_of(label or ""),
            search=q.strip(),
        )
        return services.views.site_list(query, wave=wave, page=page, per_page=PER_PAGE)

    @router.get("/sites/{site}", response_model=SiteView, tags=["fleet"], dependencies=[viewer])
    def site(site: SiteName) -> SiteView:
        """One site: its appliances, clusters with tasks and progress, recent events."""
        view = services.views.site(site)
        if view is None:
            raise NotFound(f"no site {site}")
        return view

    @router.get("/revisions", response_model=RevisionsView, tags=["fleet"], dependencies=[viewer])
    def revisions(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> RevisionsView:
        """Recent commits, newest first: good (with their rollout) or failed with errors."""
        return services.views.revisions(limit)

    async def act(action: str, changed: bool, operator: Operator) -> RolloutAction:
        view = await run_in_threadpool(services.views.fleet)
        return RolloutAction(action=action, changed=changed, by=operator.name, rollout=view.rollout)

    @router.post("/rollout/pause", response_model=RolloutAction, tags=["rollout"])
    async def pause(operator: Annotated[Operator, admin]) -> RolloutAction:
        """Release nothing new (reverts still go) until resumed, across newer commits."""
        changed = await run_in_threadpool(lambda: services.rollout.pause(by=operator.name))
        return await act("pause", changed, operator)

    @router.post("/rollout/resume", response_model=RolloutAction, tags=["rollout"])
    async def resume(operator: Annotated[Operator, admin]) -> RolloutAction:
        """Lift a pause and a halt; the failures that halted the rollout are accepted."""
        changed = await run_in_threadpool(lambda: services.rollout.resume(by=operator.name))
        return await act("resume", changed, operator)

    @router.post(
        "/rollout/promote",
        response_model=RolloutAction,
        tags=["rollout"],
        responses={409: {"model": ERRORS[404]["model"], "description": "nothing to promote"}},
    )
    async def promote(body: Promotion, operator: Annotated[Operator, admin]) -> RolloutAction:
        """Open ``wave`` now, skipping the soak of the wave before it."""
        await run_in_threadpool(lambda: services.rollout.promote(body.wave, by=operator.name))
        return await act("promote", True, operator)

    return router
