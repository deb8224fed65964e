"""``edgefleet plan [REPO] --base REV --head REV [--format text|markdown|json] [--out FILE]
[--detailed-exitcode] [--allowed-signers FILE]``.

With allowed signers, a head commit none of them signed is refused (exit 1), as ``serve``
would refuse it. Exit codes: 0 ok (with ``--detailed-exitcode``: no site changes), 1 invalid
input, 2 usage, 3 (with ``--detailed-exitcode``) some site changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.terminal import printable

from ..errors import FleetError
from ..planning import ANCESTORS, BaseInvalid, make_plan
from ..rendering import Renderer
from ..sources import AllowedSigners, GitRepository, SourceError, UntrustedCommit
from .common import add_limit_options, builtin_packs, fail_usage, limits_of, print_problems
from .plan_markdown import as_markdown
from .plan_text import as_json, as_text

EXIT_CHANGES = 3


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "plan",
        help="show which sites, clusters and nodes a change between two revisions affects",
        description="Compare two revisions of a fleet repository, reading git history only.",
    )
    parser.add_argument("repo", nargs="?", default=".", help="git repository (default: .)")
    parser.add_argument("--base", required=True, help="the revision changes are measured from")
    parser.add_argument("--head", required=True, help="the revision with the changes")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument(
        "--out",
        type=Path,
        help="also write the whole plan, never shortened, to FILE: JSON when it ends in "
        ".json, markdown otherwise (a CI artifact beside the shortened comment)",
    )
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when no site changes and 3 when some do (1 and 2 keep their meaning)",
    )
    parser.add_argument(
        "--allowed-signers",
        type=Path,
        help="ssh-keygen allowed-signers file: the head commit must be signed by one of them",
    )
    add_limit_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        renderer = Renderer(limits_of(args))
    except ValueError as e:
        return fail_usage(str(e))
    try:
        git = GitRepository(Path(args.repo))
        if args.allowed_signers is not None:
            AllowedSigners(args.allowed_signers).verify(git, args.head)
        plan = make_plan(git, args.base, args.head, builtin=builtin_packs(), renderer=renderer)
    except UntrustedCommit as e:
        print(f"the head revision {args.head} would not roll out: {e}")
        return 1
    except SourceError as e:
        return fail_usage(str(e))
    except BaseInvalid as e:
        print(
            f"the base revision {args.base} does not validate, nor do its {ANCESTORS} nearest "
            "ancestors:"
        )
        print_problems(e.diagnostics)
        return 1
    except FleetError as e:
        print_problems(e.diagnostics)
        return 1
    if args.out is not None:
        whole = as_json(plan) if args.out.suffix == ".json" else as_markdown(plan, limit=None)
        try:
            args.out.write_text(whole)
        except OSError as e:
            print(f"edgefleet: {args.out}: {e.strerror}", file=sys.stderr)
            return 1
    formats = {"text": as_text, "markdown": as_markdown, "json": as_json}
    # rendered manifests are data: a control character in a diff is shown escaped
    print(printable(formats[args.format](plan)), end="")
    return EXIT_CHANGES if args.detailed_exitcode and plan.sites else 0
