"""``edgefleet secret``: seal a manifest for appliances' age recipients, as ``sops`` would,
for those without the ``sops`` CLI, and list the recipients a site's secrets need.

edgefleet secret encrypt FILE (--recipients-for SITE | --all) [--repo DIR] [--out FILE]
                              [--encrypted-regex RE]
edgefleet secret recipients SITE [--repo DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.secrets.documents import Rule, read_document
from agent.secrets.errors import SecretError
from agent.secrets.sealing import KUBERNETES_RULE, seal_document

from ..loading import load_repository
from ..validation import age_recipients
from .common import UsageError, fail_usage, open_tree


def register(commands: Any) -> None:
    secret = commands.add_parser(
        "secret", help="seal a manifest with SOPS for appliances' age recipients"
    )
    actions = secret.add_subparsers(dest="action", metavar="ACTION", required=True)
    encrypt = actions.add_parser(
        "encrypt",
        help="seal FILE (in place, or into --out) for the appliances of a site or the fleet",
        description="Write FILE as a SOPS document (age) that the chosen appliances open. "
        "Exit 0 done, 1 nothing to seal or no recipient, 2 usage.",
    )
    encrypt.add_argument("file", type=Path, help="plaintext YAML manifest")
    chosen = encrypt.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--recipients-for", metavar="SITE", help="the appliances of SITE")
    chosen.add_argument("--all", action="store_true", help="every appliance of the fleet")
    encrypt.add_argument("--repo", default=".", help="fleet repository (default: .)")
    encrypt.add_argument("--out", type=Path, help="write here (default: FILE, in place)")
    encrypt.add_argument(
        "--encrypted-regex",
        default=KUBERNETES_RULE.pattern,
        help=f"keys whose values are sealed (default: {KUBERNETES_RULE.pattern})",
    )
    encrypt.set_defaults(run=run_encrypt)
    recipients = actions.add_parser(
        "recipients", help="print the age recipients of a site's appliances, one a line"
    )
    recipients.add_argument("site")
    recipients.add_argument("--repo", default=".", help="fleet repository (default: .)")
    recipients.set_defaults(run=run_recipients)


def _recipients(repo: str, site: str | None) -> list[str]:
    """The recipients, after saying on standard error which appliances have none."""
    loaded = load_repository(open_tree(repo, None))
    if site is not None and site not in loaded.sites:
        raise UsageError(f"unknown site '{site}'")
    found = []
    for appliance, recipient in age_recipients(loaded, site):
        if recipient is None:
            print(
                f"edgefleet: appliance {appliance} has no spec.ageRecipient: it cannot open "
                "secrets sealed now",
                file=sys.stderr,
            )
        else:
            found.append(recipient)
    return sorted(set(found))


def run_recipients(args: argparse.Namespace) -> int:
    try:
        found = _recipients(args.repo, args.site)
    except UsageError as e:
        return fail_usage(str(e))
    for recipient in found:
        print(recipient)
    return 0 if found else 1


def run_encrypt(args: argparse.Namespace) -> int:
    try:
        re.compile(args.encrypted_regex)
    except re.error as e:
        return fail_usage(f"--encrypted-regex: not a regular expression ({e})")
    try:
        text = args.file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        return fail_usage(f"{args.file}: cannot be read ({type(e).__name__})")
    try:
        found = _recipients(args.repo, None if args.all else args.recipients_for)
    except UsageError as e:
        return fail_usage(str(e))
    if not found:
        print("edgefleet: no appliance to seal for has an ageRecipient", file=sys.stderr)
        return 1
    rule = Rule("encrypted_regex", args.encrypted_regex)
    try:
        sealed = seal_document(text, found, rule=rule, now=datetime.now(UTC))
    except SecretError as e:
        print(f"edgefleet: {args.file}: {e}", file=sys.stderr)
        return 1
    out: Path = args.out or args.file
    _write(out, sealed)
    keys = ", ".join(read_document(sealed).encrypted_keys())
    plural = "s" if len(found) != 1 else ""
    print(f"sealed {out} for {len(found)} recipient{plural} (keys: {keys})")
    return 0


def _write(path: Path, text: str) -> None:
    """Replace ``path`` at once, so the plaintext is never half overwritten (its mode kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.fchmod(fd, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temporary, path)
