"""Ed25519 signatures, shared by both sides: the reconciler signs every state it serves and
every offline bundle with its key (``edgefleet keygen``); the agent verifies them against the
public key(s) it was installed with. A signature reads ``ed25519:<key id> <base64>``, both in
the ``Edgefleet-Signature`` header and in a bundle."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.errors import AgentError

HEADER = "Edgefleet-Signature"
_PEM_PUBLIC = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


class SignatureError(AgentError):
    """A key that cannot be read, or a document that is unsigned or badly signed; the
    message is one line and names the key, never its material."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as e:
        raise SignatureError(f"{path}: {e.strerror}") from None
    except (ValueError, TypeError):
        raise SignatureError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: not an Ed25519 key")
    return key


def load_public_keys(path: Path) -> tuple[Ed25519PublicKey, ...]:
    """Every public key in a PEM file: a file of two keys lets agents trust the next key
    before the reconciler signs with it (key rotation)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SignatureError(f"{path}: {e.strerror}") from None
    keys = []
    for block in _PEM_PUBLIC.findall(data):
        try:
            key = serialization.load_pem_public_key(block)
        except ValueError:
            raise SignatureError(f"{path}: not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise SignatureError(f"{path}: not an Ed25519 public key")
        keys.append(key)
    if not keys:
        raise SignatureError(f"{path}: no Ed25519 public key (PEM) in it")
    return tuple(keys)


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign(data: bytes, key: Ed25519PrivateKey) -> str:
    return f"{key_id(key.public_key())} {base64.b64encode(key.sign(data)).decode()}"


def verify(data: bytes, signature: str | None, keys: Sequence[Ed25519PublicKey]) -> str:
    """The id of the key that signed ``data``; raises SignatureError when it is unsigned,
    signed by none of ``keys``, or changed since."""
    if not keys:
        raise SignatureError("no public key to verify with")
    if not signature:
        raise SignatureError("not signed")
    named, _, encoded = signature.strip().partition(" ")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed signature") from None
    trusted = ", ".join(key_id(k) for k in keys)
    for key in keys:
        if key_id(key) != named:
            continue
        try:
            key.verify(raw, data)
        except InvalidSignature:
            raise SignatureError(f"bad signature: changed after {named} signed it") from None
        return named
    raise SignatureError(
        f"bad signature: signed by {named[:40]!r}, not by a trusted key ({trusted})"
    )
