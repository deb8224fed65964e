"""Offline bundles: one appliance's DesiredState, bound to that appliance, with an issue time
and a sequence number, signed with the reconciler's Ed25519 key (``edgefleet bundle``). The
agent verifies a bundle against the key it was installed with, refuses one for another
appliance, and refuses one older than the bundle it applied last (:class:`BundleLedger`)
unless told to go back."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from agent.contract import DesiredState, canonical_json
from agent.errors import AgentError
from agent.signatures import SignatureError, sign, verify

FORMAT = "edgefleet-bundle/v2"
_SIGNED = ("format", "appliance", "issuedAt", "sequence", "state")


class BundleError(AgentError):
    """A bundle that cannot be trusted, read or applied here; the message is one line."""


@dataclass(frozen=True)
class Bundle:
    appliance: str
    issued_at: datetime
    sequence: int
    state: DesiredState
    signed_by: str  # the key id

    def describe(self) -> str:
        return f"sequence {self.sequence}, issued {self.issued_at:%Y-%m-%dT%H:%M:%SZ}"


def make_bundle(
    state: DesiredState, key: Ed25519PrivateKey, *, issued_at: datetime, sequence: int
) -> bytes:
    """The bundle file's bytes: everything but the signature is signed."""
    signed: dict[str, Any] = {
        "format": FORMAT,
        "appliance": state.appliance,
        "issuedAt": issued_at.astimezone(UTC).isoformat(),
        "sequence": sequence,
        "state": state.model_dump(mode="json"),
    }
    bundle = {**signed, "signature": sign(canonical_json(signed), key)}
    return json.dumps(bundle, indent=2, sort_keys=True).encode() + b"\n"


def open_bundle(data: bytes, keys: Sequence[Ed25519PublicKey], *, appliance: str) -> Bundle:
    """The bundle, once its signature, its appliance and its digest check out."""
    try:
        document: Any = json.loads(data)
    except ValueError:
        raise BundleError("the bundle is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BundleError(f"not an edgefleet bundle (format must be {FORMAT})")
    if set(document) != {*_SIGNED, "signature"}:
        raise BundleError(f"the bundle must hold exactly {', '.join(_SIGNED)} and signature")
    signed = {name: document[name] for name in _SIGNED}
    try:
        signer = verify(canonical_json(signed), str(document["signature"]), keys)
    except SignatureError as e:
        raise BundleError(str(e)) from e
    if document["appliance"] != appliance:
        raise BundleError(
            f"the bundle is for appliance {str(document['appliance'])[:64]!r}, "
            f"this appliance is {appliance!r}"
        )
    try:
        state = DesiredState.model_validate(document["state"])
        issued_at = datetime.fromisoformat(str(document["issuedAt"]))
        sequence = int(document["sequence"])
    except (ValidationError, ValueError, TypeError) as e:
        raise BundleError(f"the bundle is malformed: {str(e).splitlines()[0]}") from None
    if state.appliance != appliance:
        raise BundleError(f"the bundled state is for appliance {state.appliance!r}")
    if state.computed_digest() != state.digest:
        raise BundleError("the bundled state does not match its digest")
    return Bundle(appliance, issued_at.astimezone(UTC), sequence, state, signer)


class BundleLedger:
    """The bundle this appliance applied last (``DATA_DIR/bundle.json``), so an older one,
    replayed, is refused."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "bundle.json"

    def last(self) -> tuple[int, datetime, str] | None:
        """(sequence, issue time, digest) of the bundle applied last; None before any."""
        try:
            entry = json.loads(self.path.read_text())
            return (
                int(entry["sequence"]),
                datetime.fromisoformat(entry["issuedAt"]),
                str(entry["digest"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BundleError(f"{self.path}: unreadable ({e}); remove it to start over") from e

    def admit(self, bundle: Bundle, *, allow_downgrade: bool = False) -> None:
        """Raises BundleError when ``bundle`` is older than the one applied last (the same
        bundle again is fine); with ``allow_downgrade`` anything goes."""
        last = self.last()
        if last is None or allow_downgrade:
            return
        sequence, issued_at, digest = last
        mine = (bundle.sequence, bundle.issued_at)
        if mine < (sequence, issued_at):
            raise BundleError(
                f"the bundle ({bundle.describe()}) is older than the one applied last "
                f"(sequence {sequence}, issued {issued_at:%Y-%m-%dT%H:%M:%SZ}); "
                "to go back, issue a new bundle of the old revision (or --allow-downgrade)"
            )
        if mine == (sequence, issued_at) and bundle.state.digest != digest:
            raise BundleError(
                f"the bundle ({bundle.describe()}) has the sequence of the one applied last "
                "but another state"
            )

    def record(self, bundle: Bundle) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "sequence": bundle.sequence,
            "issuedAt": bundle.issued_at.isoformat(),
            "digest": bundle.state.digest,
            "revision": bundle.state.revision,
            "signedBy": bundle.signed_by,
        }
        draft = self.path.with_suffix(".json.tmp")
        draft.write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
        os.replace(draft, self.path)
