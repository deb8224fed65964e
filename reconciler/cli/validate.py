"""``edgefleet validate [REPO] [--rev REV] [--format text|json|github]
[--forbid-plaintext-secrets] [--allowed-signers F]``.

With ``--allowed-signers`` the commit at ``--rev`` must also be signed by an allowed key, as
``serve --allowed-signers`` requires before it reconciles it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.terminal import printable

from ..sources import AllowedSigners, GitRepository, SourceError, UntrustedCommit
from ..validation import check_repository, plaintext_secrets
from .common import UsageError, builtin_packs, fail_usage, open_tree


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "validate",
        help="check a fleet repository and report every problem with file and line",
        description="Check a fleet repository. Exit 0 when valid, 1 when not, 2 on usage errors.",
    )
    parser.add_argument("repo", nargs="?", default=".", help="repository folder (default: .)")
    parser.add_argument("--rev", help="check this git revision instead of the folder as it is")
    parser.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="text (default), json, or github (workflow annotations)",
    )
    parser.add_argument(
        "--forbid-plaintext-secrets",
        action="store_true",
        help="a Kubernetes Secret with data kept in plaintext is an error, not a warning",
    )
    parser.add_argument(
        "--allowed-signers",
        type=Path,
        help="ssh-keygen allowed-signers file: the --rev commit must be signed by one of them",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.allowed_signers is not None and args.rev is None:
        return fail_usage("--allowed-signers needs --rev: a folder has no commit to check")
    try:
        tree = open_tree(args.repo, args.rev)
        untrusted = _signature(args)
    except UsageError as e:
        return fail_usage(str(e))
    checked = check_repository(tree, builtin=builtin_packs())
    problems = checked.diagnostics
    warnings = plaintext_secrets(checked.repo)
    if args.forbid_plaintext_secrets:
        problems, warnings = sorted(set(problems + warnings)), []
    count = len(problems) + (1 if untrusted else 0)
    if args.format == "json":
        document: dict[str, Any] = {
            "valid": not count,
            "errors": [d.as_json() for d in problems],
            "warnings": [d.as_json() for d in warnings],
        }
        if untrusted is not None:
            document["signature"] = {"error": untrusted}
        print(json.dumps(document, indent=2))
    elif args.format == "github":
        if untrusted is not None:
            print(f"::error::{untrusted}")
        for d in problems:
            print(f"::error file={_property(d.path)},line={d.line}::{_data(d.message)}")
        for d in warnings:
            print(f"::warning file={_property(d.path)},line={d.line}::{_data(d.message)}")
    else:
        if untrusted is not None:
            print(untrusted)
        for d in problems:
            print(printable(str(d), lines=False))
        for d in warnings:
            print(printable(f"{d.path}:{d.line}: warning: {d.message}", lines=False))
        repo = checked.repo
        clusters = sum(len(s.clusters) for s in repo.sites.values())
        appliances = sum(len(s.appliances) for s in repo.sites.values())
        summary = f"{len(repo.sites)} sites, {appliances} appliances, {clusters} clusters"
        if count:
            plural = "s" if count != 1 else ""
            print(f"invalid: {count} problem{plural} ({summary})")
        else:
            print(f"valid ({summary})")
    return 1 if count else 0


def _signature(args: argparse.Namespace) -> str | None:
    """Why the --rev commit is not trusted (None: it is, or nobody asked)."""
    if args.allowed_signers is None:
        return None
    try:
        AllowedSigners(args.allowed_signers).verify(GitRepository(Path(args.repo)), args.rev)
    except UntrustedCommit as e:
        return str(e)
    except SourceError as e:
        raise UsageError(str(e)) from e
    return None


def _data(text: str) -> str:
    """A workflow command's message: a newline in it would start a command of its own."""
    escaped = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return printable(escaped, lines=False)


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
