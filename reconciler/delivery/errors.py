"""Delivery's exceptions::

    DeliveryError
    └── InvalidToken    an agent or bootstrap token that does not authenticate

Store errors pass through unchanged: the caller decides whether to retry.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """Delivery refused an operation."""


class InvalidToken(DeliveryError):
    """A token that does not authenticate. The message never contains the token."""
