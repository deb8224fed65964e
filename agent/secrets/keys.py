"""Age keys (pyrage): an appliance's identity file as ``age-keygen`` writes it, recipients,
and a SOPS data key wrapped for one recipient and unwrapped with the identities held here."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyrage

from agent.secrets.errors import MalformedSecret, SecretError

IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
RECIPIENT_PREFIX = "age1"


@dataclass(frozen=True)
class Identity:
    """One X25519 age identity and its recipient (public key)."""

    secret: str = field(repr=False)
    recipient: str

    def handle(self) -> object:
        return pyrage.x25519.Identity.from_str(self.secret)


def generate() -> Identity:
    found = pyrage.x25519.Identity.generate()
    return Identity(str(found), str(found.to_public()))


def identity_from(text: str) -> Identity:
    """One ``AGE-SECRET-KEY-1...`` line; raises MalformedSecret without echoing it."""
    try:
        found = pyrage.x25519.Identity.from_str(text.strip())
    except pyrage.IdentityError:
        raise MalformedSecret("not an age identity (AGE-SECRET-KEY-1...)") from None
    return Identity(str(found), str(found.to_public()))


def parse_identities(text: str, *, source: str) -> list[Identity]:
    """The identities of an identity file: one per line, ``#`` comments and blanks skipped."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(identity_from(line))
        except MalformedSecret:
            raise MalformedSecret(f"{source}:{number}: not an age identity") from None
    if not found:
        raise MalformedSecret(f"{source}: holds no age identity (AGE-SECRET-KEY-1...)")
    return found


def read_identities(path: Path) -> list[Identity]:
    try:
        text = path.read_text()
    except OSError as e:
        raise SecretError(f"{path}: {e.strerror}") from None
    return parse_identities(text, source=str(path))


def identity_file(identity: Identity, *, created: datetime) -> str:
    """The text ``age-keygen`` writes for ``identity``."""
    return (
        f"# created: {created.isoformat(timespec='seconds')}\n"
        f"# public key: {identity.recipient}\n"
        f"{identity.secret}\n"
    )


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file readable by its owner alone (0600 from the start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def check_recipient(text: str) -> str:
    """``text`` if it is an X25519 age recipient (``age1...``); raises MalformedSecret."""
    try:
        pyrage.x25519.Recipient.from_str(text)
    except pyrage.RecipientError:
        raise MalformedSecret(f"'{text}' is not an age recipient (age1...)") from None
    return text


def wrap(data_key: bytes, recipient: str) -> str:
    """The data key encrypted for one recipient, armored, as SOPS keeps it in ``enc``."""
    handle = pyrage.x25519.Recipient.from_str(check_recipient(recipient))
    armored: bytes = pyrage.encrypt(data_key, [handle], armored=True)
    return armored.decode()


def unwrap(armored: str, identities: Sequence[Identity]) -> bytes | None:
    """The data key, when one of ``identities`` opens ``armored``; None when none does."""
    if not identities:
        return None
    try:
        opened: bytes = pyrage.decrypt(armored.encode(), [i.handle() for i in identities])
    except pyrage.DecryptError:
        return None
    return opened


def recipients_of(identities: Iterable[Identity]) -> list[str]:
    return [identity.recipient for identity in identities]
