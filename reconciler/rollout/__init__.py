"""Rollout: what each appliance is served, and when.

The reconcile loop hands the :class:`RolloutService` a :class:`Release` for every good
revision (or a failure for a bad one); the service starts a rollout that reaches sites wave
by wave, holds disruptive changes for maintenance windows and takes a cluster's appliances
one at a time, and admins pause, resume and promote it. Errors (:mod:`.errors`)::

    RolloutError
    ├── InvalidRelease   (permanent: the release is inconsistent; nothing recorded)
    ├── RolloutConflict  (an operator action that does not fit the rollout's state)
    └── NotMember        (a lease asked for a cluster the appliance is not served)
"""

from ..planning.waves import Wave
from .errors import InvalidRelease, NotMember, RolloutConflict, RolloutError
from .leases import Grant
from .releases import Release, SiteRelease
from .service import RolloutService

__all__ = [
    "Grant",
    "InvalidRelease",
    "NotMember",
    "Release",
    "RolloutConflict",
    "RolloutError",
    "RolloutService",
    "SiteRelease",
    "Wave",
]
