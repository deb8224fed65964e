"""Delivery: what reaches the agents. Registrations pair appliances and turn a bootstrap or
enrolment token into an agent token (:class:`Registrations`), :class:`DesiredDocuments`
answers what each appliance is served, signed, and the :class:`Notifier` wakes a long-poll
the moment that changes. Errors (:mod:`.errors`)::

    DeliveryError
    ├── InvalidToken              (a token that does not authenticate)
    └── RegistrationRefused       (AlreadyRegistered, WrongAppliance, RegistrationsLimited)
"""

from .documents import Body, DesiredDocuments, Served, body_size, presigner
from .errors import (
    AlreadyRegistered,
    DeliveryError,
    InvalidToken,
    RegistrationRefused,
    RegistrationsLimited,
    WrongAppliance,
)
from .feed import ChangeFeed
from .joins import joins_changed
from .notifications import WAKE_BATCH, Notifier
from .registrations import AgentFacts, Enrolment, Registration, Registrations

__all__ = [
    "AgentFacts",
    "AlreadyRegistered",
    "Body",
    "ChangeFeed",
    "DeliveryError",
    "DesiredDocuments",
    "Enrolment",
    "InvalidToken",
    "Notifier",
    "Registration",
    "RegistrationRefused",
    "Registrations",
    "RegistrationsLimited",
    "Served",
    "WAKE_BATCH",
    "WrongAppliance",
    "body_size",
    "presigner",
    "joins_changed",
]
