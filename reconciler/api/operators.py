"""Operator tokens: who may read fleet status (viewer) and steer the rollout (admin).

Read from ``--operator-token-file``, one ``ROLE NAME TOKEN`` per line (``#`` comments and
blank lines allowed), and read again on SIGHUP: a file that no longer parses keeps the
tokens loaded before. Tokens are compared in constant time and never appear in an error.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Role = Literal["viewer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "admin")
MIN_TOKEN = 32
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class OperatorTokenError(ValueError):
    """The token file cannot be used; the message is one line naming file and line."""


@dataclass(frozen=True)
class Operator:
    name: str
    role: Role

    def may(self, role: Role) -> bool:
        return self.role == "admin" or role == "viewer"


@dataclass(frozen=True)
class _Entry:
    operator: Operator
    digest: bytes  # sha256 of the token: equal lengths for the constant-time compare


def parse_tokens(text: str, *, source: str) -> list[_Entry]:
    entries: list[_Entry] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        parts = line.split()
        if len(parts) != 3:
            raise OperatorTokenError(f"{where}: expected ROLE NAME TOKEN")
        role, name, token = parts
        if role not in ROLES:
            raise OperatorTokenError(f"{where}: role must be viewer or admin (got {role[:16]!r})")
        if not _NAME.fullmatch(name):
            raise OperatorTokenError(f"{where}: {name[:64]!r} is not a valid name")
        if len(token) < MIN_TOKEN:
            raise OperatorTokenError(f"{where}: the token must be at least {MIN_TOKEN} characters")
        digest = hashlib.sha256(token.encode()).digest()
        if name in names:
            raise OperatorTokenError(f"{where}: {name} is listed twice")
        if digest in digests:
            raise OperatorTokenError(f"{where}: the same token is listed twice")
        names.add(name)
        digests.add(digest)
        entries.append(_Entry(Operator(name, "admin" if role == "admin" else "viewer"), digest))
    return entries


class OperatorTokens:
    """The operator tokens in force; :meth:`reload` swaps them atomically."""

    def __init__(self, entries: list[_Entry] | None = None, *, path: Path | None = None) -> None:
        self._entries = entries or []
        self._path = path
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path) -> OperatorTokens:
        """Raises OperatorTokenError."""
        return cls(_read(path), path=path)

    @classmethod
    def of(cls, *tokens: tuple[Role, str, str]) -> OperatorTokens:
        """Tokens given directly, as ``(role, name, token)``."""
        text = "\n".join(" ".join(t) for t in tokens)
        return cls(parse_tokens(text, source="<tokens>"))

    def reload(self) -> int:
        """Read the file again; returns how many tokens are in force. Raises
        OperatorTokenError, keeping the tokens loaded before."""
        if self._path is None:
            return len(self._entries)
        entries = _read(self._path)
        with self._lock:
            self._entries = entries
        return len(entries)

    def authenticate(self, token: str) -> Operator | None:
        """The operator holding ``token``; None when no one does. Every entry is compared,
        in constant time, so the answer's timing says nothing about the tokens."""
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            entries = self._entries
        found = None
        for entry in entries:
            if hmac.compare_digest(entry.digest, digest):
                found = entry.operator
        return found

    def key_of(self, name: str, purpose: bytes) -> tuple[Operator, bytes] | None:
        """The operator called ``name`` and a key for ``purpose`` derived from their token
        (None when no one is called so): what signs their dashboard sessions, so that a
        session ends when its token leaves the file or changes."""
        with self._lock:
            entries = self._entries
        for entry in entries:
            if entry.operator.name == name:
                return entry.operator, hmac.new(entry.digest, purpose, hashlib.sha256).digest()
        return None

    def __len__(self) -> int:
        return len(self._entries)


def _read(path: Path) -> list[_Entry]:
    try:
        text = path.read_text()
    except OSError as e:
        raise OperatorTokenError(f"operator token file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise OperatorTokenError(f"operator token file {path}: not UTF-8 text") from None
    return parse_tokens(text, source=str(path))
