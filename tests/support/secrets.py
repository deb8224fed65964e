"""Secrets for the tests: the SOPS documents written by the ``sops`` command (tests/data/sops,
sources in SOURCES.md), fresh age identities, and edits that tamper with a sealed document."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from pathlib import Path

from agent.secrets.keys import Identity, generate, identity_file, read_identities, write_private
from agent.secrets.sealing import seal_document
from tests.support.fleet import FleetFiles

SOPS_DATA = Path(__file__).resolve().parents[1] / "data" / "sops"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

POS_TOKEN = """\
apiVersion: v1
kind: Secret
metadata:
  name: pos-agent-enrollment
  namespace: pos
type: Opaque
stringData:
  token: enr-7f3k9q2m4x8v
"""


def published(name: str) -> str:
    return (SOPS_DATA / name).read_text()


def published_identities(name: str) -> list[Identity]:
    return read_identities(SOPS_DATA / name)


def key_file(folder: Path, identity: Identity | None = None, name: str = "age-key.txt") -> Path:
    """An identity file (0600) in ``folder``: ``identity``, or a new one."""
    path = folder / name
    write_private(path, identity_file(identity or generate(), created=NOW))
    return path


def sealed_for(*identities: Identity, text: str = POS_TOKEN) -> str:
    return seal_document(text, [i.recipient for i in identities], now=NOW)


def flip_value(sealed: str, key: str) -> str:
    """``sealed`` with one bit of the ciphertext of the value under ``key`` flipped."""
    found = re.search(rf"^(\s*{re.escape(key)}: ENC\[AES256_GCM,data:)([^,]+)", sealed, re.M)
    assert found is not None, f"no sealed value under {key}"
    data = bytearray(base64.b64decode(found.group(2)))
    data[0] ^= 1
    return (
        sealed[: found.start(2)] + base64.b64encode(bytes(data)).decode() + sealed[found.end(2) :]
    )


STORE_CLUSTER = "sites/store-1/clusters/pos.yaml"
STORE_APPLIANCE = "sites/store-1/appliances/store-1-a.yaml"
STORE_SECRET = "sites/store-1/clusters/secrets/pos-token.sops.yaml"


def give_recipient(fleet: FleetFiles, rel: str, identity: Identity) -> None:
    """``spec.ageRecipient`` of the appliance in ``rel``: ``identity``'s."""
    fleet.edit(rel, "spec:\n", f"spec:\n  ageRecipient: {identity.recipient}\n")


def add_store_secret(fleet: FleetFiles, identity: Identity, *, text: str = POS_TOKEN) -> None:
    """store-1 as a fleet repository keeps its POS token: its appliance has ``identity``'s
    recipient, and its cluster names a SOPS file sealed for it."""
    give_recipient(fleet, STORE_APPLIANCE, identity)
    fleet.write(STORE_SECRET, sealed_for(identity, text=text))
    fleet.edit(
        STORE_CLUSTER,
        "  policies:\n",
        "  manifests:\n"
        "    - name: pos-token.yaml\n"
        "      file: secrets/pos-token.sops.yaml\n"
        "  policies:\n",
    )
