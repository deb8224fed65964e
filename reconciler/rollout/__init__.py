"""Rollout: what each appliance is served, and when.

The reconcile loop hands the :class:`RolloutService` a :class:`Release` for every good
revision (or a failure for a bad one); the service starts a rollout that reaches sites wave
by wave, holds disruptive changes for maintenance windows and takes a cluster's appliances
one at a time. The API serves what the store says each appliance gets
(:class:`DesiredDocuments`), registers agents (:class:`Registrations`) and shows fleet
status (:class:`FleetViews`). Errors (:mod:`.errors`)::

    RolloutError
    ├── InvalidRelease   (permanent: the release is inconsistent; nothing recorded)
    ├── InvalidToken     (an agent or bootstrap token that does not authenticate)
    └── RolloutConflict  (an operator action that does not fit the rollout's state)
"""

from .clocks import Clock, system_clock
from .errors import InvalidRelease, InvalidToken, RolloutConflict, RolloutError
from .notifications import Notifier
from .reading import Figures, FleetViews
from .registrations import AgentFacts, Registration, Registrations
from .releases import Release, SiteRelease, Wave
from .service import RolloutService
from .serving import DesiredDocuments, Served
from .views import FleetView, RevisionsView, SiteView

__all__ = [
    "AgentFacts",
    "Clock",
    "DesiredDocuments",
    "Figures",
    "FleetView",
    "FleetViews",
    "InvalidRelease",
    "InvalidToken",
    "Notifier",
    "Registration",
    "Registrations",
    "Release",
    "RevisionsView",
    "RolloutConflict",
    "RolloutError",
    "RolloutService",
    "Served",
    "SiteRelease",
    "SiteView",
    "Wave",
    "system_clock",
]
