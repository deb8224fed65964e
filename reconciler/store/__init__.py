"""The store: everything the reconciler must remember across restarts, in SQL.

SQLAlchemy Core over SQLite (the default, one file) or PostgreSQL (several replicas). The
rollout service and the API are its only callers; they open a transaction and use the table
groups on it (:mod:`.transactions`). Errors (:mod:`.errors`)::

    StoreError
    ├── StoreUnavailable   (temporary: retry)
    └── StoreConflict      (two writers raced for one row)
"""

from .errors import StoreConflict, StoreError, StoreUnavailable
from .records import (
    AgentRecord,
    Assignment,
    ChangeRecord,
    Control,
    EnrolmentRecord,
    EventRecord,
    ReportRecord,
    RevisionRecord,
    RolloutRecord,
    RolloutSite,
    RolloutTarget,
    Streak,
)
from .transactions import DEFAULT_URL, Store, Transaction

__all__ = [
    "DEFAULT_URL",
    "AgentRecord",
    "Assignment",
    "ChangeRecord",
    "Control",
    "EnrolmentRecord",
    "EventRecord",
    "ReportRecord",
    "RevisionRecord",
    "RolloutRecord",
    "RolloutSite",
    "RolloutTarget",
    "Store",
    "StoreConflict",
    "StoreError",
    "StoreUnavailable",
    "Streak",
    "Transaction",
]
