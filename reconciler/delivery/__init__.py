"""Delivery: what reaches the agents. Registrations turn the bootstrap token into an agent
token (:class:`Registrations`), :class:`DesiredDocuments` answers what each appliance is
served, and the :class:`Notifier` wakes a long-poll the moment that changes. Errors
(:mod:`.errors`)::

    DeliveryError
    └── InvalidToken    (an agent or bootstrap token that does not authenticate)
"""

from .documents import DesiredDocuments, Served
from .errors import DeliveryError, InvalidToken
from .feed import ChangeFeed
from .notifications import Notifier
from .registrations import AgentFacts, Registration, Registrations

__all__ = [
    "AgentFacts",
    "ChangeFeed",
    "DeliveryError",
    "DesiredDocuments",
    "InvalidToken",
    "Notifier",
    "Registration",
    "Registrations",
    "Served",
]
