"""The store: everything the reconciler must remember across restarts, in SQL.

SQLAlchemy Core over SQLite (the default, one file) or PostgreSQL (several replicas). The
rollout service and the API are its only callers; they open a transaction and use the table
groups on it (:mod:`.transactions`). Errors (:mod:`.errors`)::

    StoreError
    ├── StoreUnavailable   (temporary: retry)
    ├── StoreConflict      (two writers raced for one row)
    └── SchemaMismatch     (the database's schema is older or newer: edgefleet db upgrade)
"""

from .batches import GroupCommit
from .errors import StoreConflict, StoreError, StoreUnavailable
from .listings import SiteQuery, WaveCount
from .migrations import SchemaMismatch
from .records import (
    AgentRecord,
    Assignment,
    ChangeRecord,
    ClusterJoinRecord,
    Control,
    DeliveryRecord,
    EnrolmentRecord,
    EventRecord,
    LeaseRecord,
    ReportRecord,
    RevisionRecord,
    RolloutRecord,
    RolloutSite,
    RolloutTarget,
    Streak,
    amended,
)
from .transactions import DEFAULT_URL, Store, Transaction, upgrade_schema

__all__ = [
    "DEFAULT_URL",
    "AgentRecord",
    "Assignment",
    "ChangeRecord",
    "ClusterJoinRecord",
    "Control",
    "DeliveryRecord",
    "EnrolmentRecord",
    "EventRecord",
    "GroupCommit",
    "LeaseRecord",
    "ReportRecord",
    "RevisionRecord",
    "RolloutRecord",
    "RolloutSite",
    "RolloutTarget",
    "SchemaMismatch",
    "SiteQuery",
    "Store",
    "StoreConflict",
    "StoreError",
    "StoreUnavailable",
    "Streak",
    "Transaction",
    "upgrade_schema",
    "WaveCount",
    "amended",
]
