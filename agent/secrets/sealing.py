"""Sealing plaintext YAML into a SOPS document for age recipients, as ``sops --encrypt --age``
writes it: a fresh data key wrapped for each recipient, each value the rule selects sealed
with its path as additional data, the MAC over the values sealed with the time. Comments
are not kept (SOPS would seal them; they never count in the MAC)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from datetime import UTC, datetime

from agent.secrets.documents import (
    METADATA_KEY,
    Branch,
    Path,
    Rule,
    Scalar,
    Value,
    load_yaml,
    map_leaves,
)
from agent.secrets.emitting import sealed_yaml
from agent.secrets.errors import MalformedSecret, NothingToSeal
from agent.secrets.keys import check_recipient, wrap
from agent.secrets.values import KEY_BYTES, mac_bytes, path_data, seal_value

# the SOPS release whose file format this writes (metadata fields and their meaning)
FORMAT_VERSION = "3.9.0"
KUBERNETES_RULE = Rule("encrypted_regex", "^(data|stringData)$")


def seal_document(
    text: str, recipients: Sequence[str], *, rule: Rule = KUBERNETES_RULE, now: datetime
) -> str:
    """``text`` (plaintext YAML, one or more documents) sealed for ``recipients``; raises
    MalformedSecret (not YAML mappings, already sealed, a bad recipient) or NothingToSeal."""
    if not recipients:
        raise MalformedSecret("no age recipient to encrypt for")
    for recipient in recipients:
        check_recipient(recipient)
    documents = load_yaml(text)
    if any(METADATA_KEY in document for document in documents):
        raise MalformedSecret("already a SOPS document (it has a top-level 'sops' key)")
    key = os.urandom(KEY_BYTES)
    digest = hashlib.sha512()
    sealed_any = False

    def seal(path: Path, value: Scalar) -> Scalar:
        nonlocal sealed_any
        if value is None:
            return None
        digest.update(mac_bytes(value))
        if not rule.encrypts(path):
            return value
        sealed_any = sealed_any or value != ""
        return seal_value(value, key, path_data(path))

    sealed = [map_leaves(document, (), seal) for document in documents]
    if not sealed_any:
        raise NothingToSeal(f"no value is selected by {rule.kind} '{rule.pattern}'")
    modified = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields: Branch = {
        "age": [{"recipient": r, "enc": wrap(key, r)} for r in dict.fromkeys(recipients)],
        "lastmodified": modified,
        "mac": seal_value(digest.hexdigest().upper(), key, modified),
        rule.kind: rule.pattern,
        "version": FORMAT_VERSION,
    }
    metadata = dict(sorted(fields.items()))  # in SOPS's order
    return sealed_yaml([_with_metadata(document, metadata) for document in sealed])


def _with_metadata(document: Value, metadata: Branch) -> Branch:
    assert isinstance(document, dict)
    return {**document, METADATA_KEY: metadata}
