"""``edgefleet validate [REPO] [--rev REV] [--format text|json|github]
[--forbid-plaintext-secrets]``."""

from __future__ import annotations

import argparse
import json
from typing import Any

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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        tree = open_tree(args.repo, args.rev)
    except UsageError as e:
        return fail_usage(str(e))
    checked = check_repository(tree, builtin=builtin_packs())
    problems = checked.diagnostics
    warnings = plaintext_secrets(checked.repo)
    if args.forbid_plaintext_secrets:
        problems, warnings = sorted(set(problems + warnings)), []
    if args.format == "json":
        document = {
            "valid": not problems,
            "errors": [d.as_json() for d in problems],
            "warnings": [d.as_json() for d in warnings],
        }
        print(json.dumps(document, indent=2))
    elif args.format == "github":
        for d in problems:
            print(f"::error file={d.path},line={d.line}::{d.message}")
        for d in warnings:
            print(f"::warning file={d.path},line={d.line}::{d.message}")
    else:
        for d in problems:
            print(d)
        for d in warnings:
            print(f"{d.path}:{d.line}: warning: {d.message}")
        repo = checked.repo
        clusters = sum(len(s.clusters) for s in repo.sites.values())
        appliances = sum(len(s.appliances) for s in repo.sites.values())
        summary = f"{len(repo.sites)} sites, {appliances} appliances, {clusters} clusters"
        if problems:
            plural = "s" if len(problems) != 1 else ""
            print(f"invalid: {len(problems)} problem{plural} ({summary})")
        else:
            print(f"valid ({summary})")
    return 1 if problems else 0
