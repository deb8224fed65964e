"""Offline bundles: a DesiredState signed with the reconciler's Ed25519 key (``edgefleet
bundle``), verified by the agent against the key it was installed with."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from agent.contract import DesiredState, canonical_json
from agent.errors import AgentError

FORMAT = "edgefleet-bundle/v1"


class BundleError(AgentError):
    """A bundle that cannot be trusted or read; the message is one line."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def sign(state: DesiredState, key: Ed25519PrivateKey) -> bytes:
    document = state.model_dump(mode="json")
    signature = key.sign(canonical_json(document))
    bundle = {
        "format": FORMAT,
        "keyId": key_id(key.public_key()),
        "state": document,
        "signature": base64.b64encode(signature).decode(),
    }
    return json.dumps(bundle, indent=2, sort_keys=True).encode() + b"\n"


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as e:
        raise BundleError(f"{path}: not an Ed25519 public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path}: not an Ed25519 public key")
    return key


def verify(data: bytes, public: Ed25519PublicKey) -> DesiredState:
    """The bundle's DesiredState, once its signature and digest check out."""
    try:
        bundle: Any = json.loads(data)
    except ValueError:
        raise BundleError("the bundle is not JSON") from None
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise BundleError(f"not an edgefleet bundle (format must be {FORMAT})")
    state = bundle.get("state")
    try:
        signature = base64.b64decode(str(bundle.get("signature", "")), validate=True)
        public.verify(signature, canonical_json(state))
    except (InvalidSignature, ValueError):
        raise BundleError(
            f"bad signature: the bundle was not signed by key {key_id(public)} or was changed"
        ) from None
    try:
        desired = DesiredState.model_validate(state)
    except ValidationError as e:
        raise BundleError(f"the bundled state is malformed: {e.errors()[0]['msg']}") from None
    if desired.computed_digest() != desired.digest:
        raise BundleError("the bundled state does not match its digest")
    return desired
