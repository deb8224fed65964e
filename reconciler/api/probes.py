"""``GET /healthz`` and ``GET /metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from ..store import StoreError
from .errors import Unavailable
from .services import Services


class Health(BaseModel):
    status: str
    store: str


def probe_routes(services: Services, registry: CollectorRegistry) -> APIRouter:
    router = APIRouter(tags=["probes"])

    @router.get("/healthz", response_model=Health)
    def healthz() -> Health:
        """200 while the store answers; 503 when it does not."""
        try:
            services.store.ping()
        except StoreError as e:
            raise Unavailable("the store is unavailable") from e
        return Health(status="ok", store=services.store.dialect)

    @router.get("/metrics", response_class=Response)
    def metrics() -> Response:
        """Prometheus text exposition."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
