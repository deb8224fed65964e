"""Delivery's exceptions::

    DeliveryError
    ├── InvalidToken              an agent, bootstrap or enrolment token that does not
    │                             authenticate (unknown, expired, used, or rotated away)
    └── RegistrationRefused       a registration the rules do not allow
        ├── AlreadyRegistered     the appliance has a token: rotate with it, or an admin resets
        ├── WrongAppliance        a token bound to another appliance
        └── RegistrationsLimited  too many discovered appliances, or too many from one address

Store errors pass through unchanged: the caller decides whether to retry.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """Delivery refused an operation."""


class InvalidToken(DeliveryError):
    """A token that does not authenticate. The message never contains the token."""


class RegistrationRefused(DeliveryError):
    """A registration refused by the enrolment rules; the message says why, in one line."""


class AlreadyRegistered(RegistrationRefused):
    pass


class WrongAppliance(RegistrationRefused):
    pass


class RegistrationsLimited(RegistrationRefused):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds; None: not a matter of time
