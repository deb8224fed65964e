"""The rollout service's exceptions::

    RolloutError              the service refused an operation
    ├── InvalidRelease        permanent: the release handed over is inconsistent (a digest
    │                         that does not match its document, an appliance in two sites);
    │                         nothing of it is recorded, the same input will fail again
    ├── RolloutConflict       an operator action that does not fit the rollout's state
    └── NotMember             an agent asked for the lease of a cluster it is not served

Store errors (``reconciler.store.StoreError`` and its temporary ``StoreUnavailable``) pass
through unchanged: the caller decides whether to retry.
"""

from __future__ import annotations


class RolloutError(Exception):
    """The rollout service refused an operation."""


class InvalidRelease(RolloutError):
    """The release is inconsistent; it was not recorded."""


class RolloutConflict(RolloutError):
    """An operator action that does not fit the rollout's state (nothing to promote, a
    halted rollout to promote, no such wave)."""


class NotMember(RolloutError):
    """The appliance is not served the cluster whose lease it asked for."""
