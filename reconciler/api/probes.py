"""``GET /healthz`` (open) and ``GET /metrics`` (viewer, unless ``--metrics-public``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from ..store import StoreError
from .auth import operator_access
from .errors import ERRORS, Unavailable
from .services import Services


class Health(BaseModel):
    status: str
    store: str
    reconciling: bool  # this replica holds the leadership and runs the reconcile loop


def probe_routes(services: Services, registry: CollectorRegistry) -> APIRouter:
    router = APIRouter(tags=["probes"])

    @router.get("/healthz", response_model=Health)
    def healthz() -> Health:
        """200 while the store answers; 503 when it does not."""
        try:
            services.store.ping()
        except StoreError as e:
            raise Unavailable("the store is unavailable") from e
        return Health(status="ok", store=services.store.dialect, reconciling=services.leading())

    guard = (
        [] if services.metrics_public else [Depends(operator_access(services.operators, "viewer"))]
    )

    @router.get(
        "/metrics",
        response_class=Response,
        dependencies=guard,
        responses={} if services.metrics_public else {k: ERRORS[k] for k in (401, 403)},
    )
    def metrics() -> Response:
        """Prometheus text exposition."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
