"""Operator endpoints: ``GET /v1/fleet`` and ``GET /v1/sites/{site}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from ..rollout import FleetView, SiteView
from .errors import NotFound
from .services import Services

SiteName = Annotated[str, Path(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]


def fleet_routes(services: Services) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["fleet"])

    @router.get("/fleet", response_model=FleetView)
    def fleet() -> FleetView:
        """Current and last failed revision, the rollout, every site and discovered agents."""
        return services.views.fleet()

    @router.get("/sites/{site}", response_model=SiteView)
    def site(site: SiteName) -> SiteView:
        """One site: its appliances, clusters with tasks and progress, recent events."""
        view = services.views.site(site)
        if view is None:
            raise NotFound(f"no site {site}")
        return view

    return router
