"""The HTTP application: :func:`create_app` wires the core services into FastAPI routes.

Collaborators come in as keyword arguments; nothing is global, so tests (and several apps in
one process) each get their own store, clock, metrics registry and notifier. Run it with
uvicorn on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from agent.signatures import sign

from ..clocks import Clock
from ..delivery import DesiredDocuments, Registrations
from ..rollout import RolloutService
from ..store import Store, StoreError
from ..views import FleetViews, SourceView
from .agentpath import AgentPath
from .agents import agent_routes
from .appliances import appliance_routes
from .dashboard import dashboard_routes, static_files
from .errors import install_handlers
from .fleet import fleet_routes
from .hooks import hook_routes
from .metrics import build_registry
from .operators import OperatorTokens
from .probes import probe_routes
from .pushes import PushEvent
from .services import Services

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024


def create_app(
    *,
    store: Store,
    rollout: RolloutService,
    clock: Clock,
    bootstrap_token: str | None,
    webhook_secret: str | None = None,
    on_push: Callable[[PushEvent], object] | None = None,
    tick_interval: float | None = 15.0,
    max_wait: float = 300.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    operators: OperatorTokens | None = None,
    metrics_public: bool = False,
    leading: Callable[[], bool] | None = None,
    source: Callable[[], SourceView | None] = lambda: None,
    signing_key: Ed25519PrivateKey | None = None,
    max_discovered: int = 1000,
    registrations_per_minute: float = 60.0,
) -> FastAPI:
    """The reconciler's API.

    ``operators`` may read status (viewers) and steer the rollout (admins); without any,
    every operator route answers 401. ``metrics_public`` opens ``/metrics`` to anyone.
    ``on_push`` is called (in a worker thread) for every verified push webhook;
    ``tick_interval`` runs ``rollout.tick()`` that often (None: the caller ticks);
    ``max_wait`` bounds ``GET /v1/desired?wait=N``; bodies over ``max_body_bytes`` get 413.
    ``source`` tells how the last fetch of a remote repository went (fleet status).
    ``signing_key`` signs every served state (without one they go unsigned, and agents
    refuse them). ``bootstrap_token`` None: appliances pair with enrolment tokens only;
    ``max_discovered`` and ``registrations_per_minute`` bound undeclared registrations.
    """
    signer = (lambda body: sign(body, signing_key)) if signing_key is not None else None
    services = Services(
        store=store,
        rollout=rollout,
        registrations=Registrations(
            store=store,
            clock=clock,
            bootstrap_token=bootstrap_token,
            notifier=rollout.notifier,
            max_discovered=max_discovered,
            per_minute=registrations_per_minute,
        ),
        documents=DesiredDocuments(store=store, notifier=rollout.notifier, signer=signer),
        views=FleetViews(
            store=store, clock=clock, heartbeat_timeout=rollout.heartbeat_timeout, source=source
        ),
        notifier=rollout.notifier,
        on_push=on_push,
        webhook_secret=webhook_secret.encode() if webhook_secret else None,
        max_wait=max_wait,
        operators=operators if operators is not None else OperatorTokens(),
        metrics_public=metrics_public,
        leading=leading or (lambda: False),
    )
    registry = build_registry(
        views=services.views, notifier=services.notifier, documents=services.documents
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ticker = asyncio.create_task(_tick_every(rollout, tick_interval)) if tick_interval else None
        try:
            yield
        finally:
            if ticker is not None:
                ticker.cancel()
                with suppress(asyncio.CancelledError):
                    await ticker

    app = _Application(
        AgentPath(services, max_body_bytes=max_body_bytes),
        title="edgefleet reconciler",
        version="1",
        description="Desired states for edge appliances, rolled out wave by wave.",
        lifespan=lifespan,
        max_body_size=max_body_bytes,
        # no OpenTelemetry of FastAPI's own: it would record validation failures and
        # exception messages, with the input values they quote, wherever a process-wide
        # provider sends them; and it asks whether one is configured on every request
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    if "max_body_size" in getattr(app, "extra", {}):  # FastAPI before 0.164 ignores it
        raise RuntimeError("this FastAPI ignores max_body_size: edgefleet needs fastapi>=0.164")
    install_handlers(app)
    app.include_router(agent_routes(services))
    app.include_router(fleet_routes(services))
    app.include_router(appliance_routes(services))
    app.include_router(hook_routes(services))
    app.include_router(probe_routes(services, registry))
    app.include_router(dashboard_routes(services, clock=clock))
    app.mount("/static", static_files(), name="static")
    return app


class _Application(FastAPI):
    """FastAPI, with the agents' busiest requests answered before it (:mod:`.agentpath`)."""

    def __init__(self, agent_path: AgentPath, **options: Any) -> None:
        super().__init__(**options)
        self.agent_path = agent_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handed_on = await self.agent_path.answer(scope, receive, send)
            if handed_on is None:
                return
            receive = handed_on
        await super().__call__(scope, receive, send)


async def _tick_every(rollout: RolloutService, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(rollout.tick)
        except StoreError as e:  # temporary: the next tick tries again
            log.warning("rollout tick failed: %s", e)
