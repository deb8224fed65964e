"""``edgefleet validate [REPO] [--rev REV] [--format text|json|github]``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from agent.terminal import printable

from ..validation import check_repository
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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        tree = open_tree(args.repo, args.rev)
    except UsageError as e:
        return fail_usage(str(e))
    checked = check_repository(tree, builtin=builtin_packs())
    problems = checked.diagnostics
    if args.format == "json":
        print(
            json.dumps({"valid": not problems, "errors": [d.as_json() for d in problems]}, indent=2)
        )
    elif args.format == "github":
        for d in problems:
            print(f"::error file={_property(d.path)},line={d.line}::{_data(d.message)}")
    else:
        for d in problems:
            print(printable(str(d), lines=False))
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


def _data(text: str) -> str:
    """A workflow command's message: a newline in it would start a command of its own."""
    escaped = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return printable(escaped, lines=False)


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
