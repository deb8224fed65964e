"""``edgefleet keygen`` and ``edgefleet bundle``: the reconciler's Ed25519 key, which signs
every served state (``serve --signing-key``) and offline bundles; a bundle is one appliance's
desired state, bound to it, with an issue time and a sequence number.

edgefleet keygen --out KEY             (writes KEY, the private key, and KEY.pub)
edgefleet bundle [REPO] [--rev REV] --appliance ID --key KEY --out FILE [--sequence N]
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.link.bundles import make_bundle
from agent.signatures import SignatureError, key_id, public_pem
from agent.signatures import load_private_key as read_private_key

from ..errors import FleetError
from ..rendering import render_repository
from ..validation import check_repository
from .common import UsageError, builtin_packs, fail_usage, open_tree, print_problems, revision_of


def register(commands: Any) -> None:
    keygen = commands.add_parser(
        "keygen", help="create the Ed25519 key that signs served states and offline bundles"
    )
    keygen.add_argument("--out", type=Path, required=True, help="private key file (mode 0600)")
    keygen.set_defaults(run=run_keygen)
    bundle = commands.add_parser(
        "bundle", help="write one appliance's desired state, signed, for an offline site"
    )
    bundle.add_argument("repo", nargs="?", default=".", help="repository (default: .)")
    bundle.add_argument("--rev", help="revision to bundle (default: the folder as it is)")
    bundle.add_argument("--appliance", required=True, help="appliance ID")
    bundle.add_argument("--key", type=Path, required=True, help="private key from keygen")
    bundle.add_argument("--out", type=Path, required=True, help="bundle file to write")
    bundle.add_argument(
        "--sequence",
        type=int,
        help="the bundle's number: the agent refuses one lower than the last it applied "
        "(default: the issue time in milliseconds since the epoch)",
    )
    bundle.set_defaults(run=run_bundle)


def run_keygen(args: argparse.Namespace) -> int:
    if args.out.exists():
        return fail_usage(f"{args.out} exists; not overwriting a signing key")
    key = Ed25519PrivateKey.generate()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    args.out.with_suffix(args.out.suffix + ".pub").write_bytes(public_pem(key))
    print(f"wrote {args.out} and {args.out}.pub ({key_id(key.public_key())})")
    return 0


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        return read_private_key(path)
    except SignatureError as e:
        raise UsageError(str(e)) from None


def run_bundle(args: argparse.Namespace) -> int:
    try:
        key = load_private_key(args.key)
        tree = open_tree(args.repo, args.rev)
    except UsageError as e:
        return fail_usage(str(e))
    checked = check_repository(tree, builtin=builtin_packs())
    if checked.diagnostics:
        print_problems(checked.diagnostics)
        return 1
    site = next(
        (
            name
            for name, files in checked.repo.sites.items()
            if any(a.model.metadata.name == args.appliance for a in files.appliances)
        ),
        None,
    )
    if site is None:
        return fail_usage(f"appliance '{args.appliance}' is not declared in any site")
    try:
        states = render_repository(
            checked.repo, checked.registry, revision=revision_of(tree), sites=[site]
        )
    except FleetError as e:
        print_problems(e.diagnostics)
        return 1
    state = states[site][args.appliance]
    issued_at = datetime.now(UTC)
    sequence = args.sequence if args.sequence is not None else int(issued_at.timestamp() * 1000)
    args.out.write_bytes(make_bundle(state, key, issued_at=issued_at, sequence=sequence))
    print(
        f"wrote {args.out}: {args.appliance} at {state.revision[:12]}, {state.digest[:19]}, "
        f"sequence {sequence}"
    )
    return 0
