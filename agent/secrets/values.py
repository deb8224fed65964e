"""One value of a SOPS document: ``ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]``, AES-256-GCM
under the document's data key with the value's path (``stringData:token:``) as additional
data, and the bytes each value adds to the document's MAC (SOPS's ``ToBytes``)."""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.secrets.documents import Document, Scalar, Timestamp, go_int, read_document
from agent.secrets.errors import MalformedSecret, TamperedSecret

_SEALED = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
NONCE_BYTES = 32  # as SOPS draws them
TAG_BYTES = 16
KEY_BYTES = 32
# the first bytes hashed when only encrypted values count (``mac_only_encrypted``), so such a
# MAC never equals the one over every value
MAC_ONLY_ENCRYPTED_START = bytes.fromhex(
    "8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69"
)
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


@dataclass(frozen=True)
class Sealed:
    data: bytes
    iv: bytes
    tag: bytes
    type: str


def parse_sealed(text: str) -> Sealed | None:
    found = _SEALED.match(text)
    if found is None:
        return None
    try:
        data, iv, tag = (base64.b64decode(part, validate=True) for part in found.groups()[:3])
    except binascii.Error:
        return None
    return Sealed(data, iv, tag, found.group(4))


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and parse_sealed(value) is not None


def path_data(path: Sequence[str]) -> str:
    """The additional data of a value: its keys joined by ``:``, with a trailing ``:``."""
    return ":".join(path) + ":"


def open_value(text: str, key: bytes, additional: str) -> Scalar:
    """The plaintext of one sealed value; raises MalformedSecret (not an ENC[...] value, an
    unknown type) or TamperedSecret (it does not authenticate)."""
    if text == "":
        return ""  # SOPS leaves empty strings as they are
    sealed = parse_sealed(text)
    if sealed is None:
        raise MalformedSecret("is not encrypted (ENC[AES256_GCM,...] expected)")
    if len(sealed.tag) != TAG_BYTES or len(sealed.iv) < 8:
        raise TamperedSecret("does not authenticate (its iv or tag is cut)")
    try:
        plain = AESGCM(key).decrypt(sealed.iv, sealed.data + sealed.tag, additional.encode())
    except InvalidTag:
        raise TamperedSecret("does not authenticate with the data key") from None
    return _typed(plain, sealed.type)


def _typed(plain: bytes, kind: str) -> Scalar:
    try:
        text = plain.decode()
    except UnicodeDecodeError:
        raise MalformedSecret(f"holds a {kind} value that is not UTF-8") from None
    if kind in ("str", "bytes"):
        return text
    if kind == "time":
        return Timestamp(text)
    if kind == "int":
        number = go_int(text, 10)
        if number is None:
            raise MalformedSecret("holds an int value that is not a number")
        return number
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise MalformedSecret("holds a float value that is not a number") from None
    if kind == "bool":
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise MalformedSecret("holds a bool value that is neither true nor false")
    raise MalformedSecret(f"has an unknown type '{kind}'")


def seal_value(value: Scalar, key: bytes, additional: str, *, nonce: bytes | None = None) -> Scalar:
    """``value`` sealed as SOPS seals it (an empty string and null stay as they are)."""
    if value is None or value == "":
        return value
    kind, plain = _kind_and_bytes(value)
    iv = nonce if nonce is not None else os.urandom(NONCE_BYTES)
    out = AESGCM(key).encrypt(iv, plain, additional.encode())
    data, tag = out[:-TAG_BYTES], out[-TAG_BYTES:]
    return f"ENC[AES256_GCM,data:{_b64(data)},iv:{_b64(iv)},tag:{_b64(tag)},type:{kind}]"


def _kind_and_bytes(value: Scalar) -> tuple[str, bytes]:
    if isinstance(value, Timestamp):
        return "time", value.encode()
    if isinstance(value, str):
        return "str", value.encode()
    if isinstance(value, bool):
        return "bool", mac_bytes(value)
    if isinstance(value, int):
        return "int", mac_bytes(value)
    if isinstance(value, float):
        return "float", mac_bytes(value)
    raise MalformedSecret(f"cannot encrypt a value of type {type(value).__name__}")


def mac_bytes(value: Scalar) -> bytes:
    """What a non-null value adds to the MAC, as SOPS's ``ToBytes`` writes it."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return go_float(value).encode()
    raise MalformedSecret(f"cannot hash a value of type {type(value).__name__}")


def go_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'f', -1, 64)``: the shortest digits, no exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return format(Decimal(repr(value)).normalize(), "f")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def read_sealed(text: str) -> Document:
    """``text`` as a SOPS document whose every value the rule selects is sealed (or empty),
    and whose MAC is: a well-formed document, checked without any key."""
    document = read_document(text)
    for path, value in document.leaves():
        if value is None or value == "" or not document.metadata.rule.encrypts(path):
            continue
        if not is_sealed(value):
            where = ".".join(path) or "a value"
            raise MalformedSecret(f"{where} is not encrypted (ENC[AES256_GCM,...] expected)")
    if not is_sealed(document.metadata.mac):
        raise MalformedSecret("sops.mac is not an ENC[AES256_GCM,...] value")
    return document
