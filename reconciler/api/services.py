"""What the route modules are built with: the core services and the app's settings, handed
in by :func:`reconciler.api.create_app` (no module-level state)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..delivery import DesiredDocuments, Notifier, Registrations
from ..rollout import RolloutService
from ..store import Store
from ..views import FleetViews
from .operators import OperatorTokens
from .polls import LongPolls
from .pushes import PushEvent


@dataclass(frozen=True)
class Services:
    store: Store
    rollout: RolloutService
    registrations: Registrations
    documents: DesiredDocuments
    views: FleetViews
    notifier: Notifier
    on_push: Callable[[PushEvent], object] | None
    webhook_secret: bytes | None
    max_wait: float
    operators: OperatorTokens
    metrics_public: bool = False
    leading: Callable[[], bool] = lambda: False  # noqa: E731 - runs the reconcile loop
    polls: LongPolls = field(default_factory=LongPolls)
