"""Dashboard sessions: an operator logs in with their token once and gets a cookie; forms
that act carry a CSRF token tied to that session.

The cookie (``__Host-edgefleet-session``: Secure, HttpOnly, SameSite=Strict, Path=/) holds
the operator's name, an expiry and an HMAC of both keyed by a key derived from their token
(:meth:`OperatorTokens.key_of`). Nothing is kept on the server, so every replica accepts it,
and a session ends at its expiry or as soon as its token is removed or changed in
``--operator-token-file``. The token itself never leaves the login request.

The CSRF token of a session is another HMAC under the same key; a request that acts on a
session must send it back (form field ``csrf`` or header ``X-CSRF-Token``) and, when the
browser says where it comes from (``Origin``), come from this server's own origin.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from ...clocks import Clock, epoch
from ..operators import Operator, OperatorTokens

COOKIE = "__Host-edgefleet-session"
LIFETIME = 12 * 3600.0  # seconds a session lasts
_PURPOSE = b"edgefleet dashboard session v1"
_VALUE = re.compile(r"^([A-Za-z0-9._@-]{1,64}):(\d{1,12}):([0-9a-f]{64})$")


@dataclass(frozen=True)
class Session:
    operator: Operator
    expires: int  # seconds since the epoch
    csrf: str  # what forms acting on this session must send back


class Sessions:
    def __init__(self, tokens: OperatorTokens, *, clock: Clock, lifetime: float = LIFETIME):
        self._tokens = tokens
        self._clock = clock
        self._lifetime = lifetime

    def open(self, operator: Operator) -> str:
        """The cookie value of a new session for ``operator``."""
        expires = int(epoch(self._clock) + self._lifetime)
        key = self._key(operator.name)
        assert key is not None, "an operator who just logged in has a token"
        return f"{operator.name}:{expires}:{_mac(key, b'session', operator.name, expires)}"

    def find(self, value: str | None) -> Session | None:
        """The session a cookie value names; None when it is malformed, forged, expired or
        its operator's token changed."""
        match = _VALUE.match(value or "")
        if match is None:
            return None
        name, expires, mac = match.group(1), int(match.group(2)), match.group(3)
        if expires <= epoch(self._clock):
            return None
        found = self._tokens.key_of(name, _PURPOSE)
        if found is None:
            return None
        operator, key = found
        if not hmac.compare_digest(mac, _mac(key, b"session", name, expires)):
            return None
        return Session(operator, expires, _mac(key, b"csrf", name, expires))

    @staticmethod
    def csrf_matches(session: Session, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(session.csrf, sent)

    @property
    def lifetime(self) -> int:
        return int(self._lifetime)

    def _key(self, name: str) -> bytes | None:
        found = self._tokens.key_of(name, _PURPOSE)
        return found[1] if found else None


def _mac(key: bytes, purpose: bytes, name: str, expires: int) -> str:
    message = b"%s\0%s\0%d" % (purpose, name.encode(), expires)
    return hmac.new(key, message, hashlib.sha256).hexdigest()
