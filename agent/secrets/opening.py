"""Opening a SOPS document with the age identities held here: unwrap the data key, decrypt
each value the rule encrypted (its path is the additional data), and check the MAC over the
values before anything of the plaintext is returned. Only the agent calls it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.secrets.documents import (
    Branch,
    Document,
    Path,
    Scalar,
    Value,
    map_leaves,
    read_document,
)
from agent.secrets.emitting import plaintext_yaml
from agent.secrets.errors import MacMismatch, MalformedSecret, NoMatchingKey, TamperedSecret
from agent.secrets.keys import Identity, unwrap
from agent.secrets.values import (
    KEY_BYTES,
    MAC_ONLY_ENCRYPTED_START,
    mac_bytes,
    open_value,
    path_data,
)


@dataclass(frozen=True)
class Opened:
    """A document's plaintext, to be written where it is used and nowhere else."""

    text: str = field(repr=False)
    keys: tuple[str, ...]  # the dotted paths of the values that were encrypted


def open_document(text: str, identities: Sequence[Identity]) -> Opened:
    """The plaintext of ``text``; raises MalformedSecret, NoMatchingKey, TamperedSecret or
    MacMismatch with a reason that names keys and recipients, never a value."""
    document = read_document(text)
    key = data_key(document, identities)
    rule = document.metadata.rule
    only_encrypted = document.metadata.mac_only_encrypted
    digest = hashlib.sha512(MAC_ONLY_ENCRYPTED_START if only_encrypted else b"")

    def reveal(path: Path, value: Scalar) -> Scalar:
        encrypted = rule.encrypts(path)
        if encrypted and value is not None:
            if not isinstance(value, str):
                raise MalformedSecret(f"{_dotted(path)} is not encrypted (ENC[...] expected)")
            try:
                value = open_value(value, key, path_data(path))
            except (MalformedSecret, TamperedSecret) as e:
                raise type(e)(f"{_dotted(path)} {e}") from None
        if value is not None and (encrypted or not only_encrypted):
            digest.update(mac_bytes(value))
        return value

    opened = [_branch(map_leaves(branch, (), reveal)) for branch in document.branches]
    check_mac(document, key, digest.hexdigest().upper())
    return Opened(plaintext_yaml(opened), document.encrypted_keys())


def data_key(document: Document, identities: Sequence[Identity]) -> bytes:
    """The document's data key, unwrapped by the first stanza one of ``identities`` opens."""
    mine = {identity.recipient for identity in identities}
    stanzas = sorted(document.metadata.age, key=lambda s: s.recipient not in mine)
    for stanza in stanzas:
        key = unwrap(stanza.enc, identities)
        if key is not None:
            if len(key) != KEY_BYTES:
                raise TamperedSecret(f"its data key is {len(key)} bytes, not 32")
            return key
    held = ", ".join(sorted(mine)) or "none"
    listed = ", ".join(stanza.recipient for stanza in document.metadata.age)
    raise NoMatchingKey(f"no age identity here opens it (recipients: {listed}; held: {held})")


def check_mac(document: Document, key: bytes, computed: str) -> None:
    try:
        recorded = open_value(document.metadata.mac, key, document.metadata.lastmodified)
    except (MalformedSecret, TamperedSecret):
        raise TamperedSecret(
            "its MAC does not authenticate (sops.mac or sops.lastmodified was changed)"
        ) from None
    if recorded != computed:
        raise MacMismatch("its MAC does not match its values (changed after it was encrypted)")


def _branch(value: Value) -> Branch:
    assert isinstance(value, dict)
    return value


def _dotted(path: Path) -> str:
    return ".".join(path) or "a value"
