"""The reconciler service's loop: follow a branch (:mod:`.watching`) and reconcile each new
commit into a release (:mod:`.reconciling`)."""

from .reconciling import Outcome, Reason, Reconciler
from .replicas import Replica
from .watching import LocalSource, Loop, RemoteSource, Source, open_source

__all__ = [
    "LocalSource",
    "Loop",
    "Outcome",
    "Reason",
    "Reconciler",
    "RemoteSource",
    "Replica",
    "Source",
    "open_source",
]
