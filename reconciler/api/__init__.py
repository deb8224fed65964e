"""The reconciler's HTTP API (FastAPI): agents register, long-poll their desired state and
report status; operators read fleet and site status; git hosts push webhooks.

Routes are thin: parse, call :mod:`reconciler.rollout`, map errors (:mod:`.errors`)::

    ApiError
    ├── Unauthorized   401
    ├── NotFound       404
    └── Unavailable    503
"""

from .application import MAX_BODY_BYTES, create_app
from .pushes import PushEvent

__all__ = ["MAX_BODY_BYTES", "PushEvent", "create_app"]
