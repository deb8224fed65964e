"""The ``edgefleet`` command: parse arguments, call the core, map results to exit codes.

Exit codes: 0 ok, 1 invalid input or a failed check, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def version() -> str:
    try:
        return metadata.version("edgefleet")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    # imported here: without the `server` extra (an appliance's install) the command still
    # starts, and says what is missing in one line
    from . import (
        appliance,
        bundle,
        database,
        plan,
        render,
        rollout,
        secret,
        serve,
        status,
        validate,
    )

    parser = argparse.ArgumentParser(
        prog="edgefleet", description="GitOps for Kubernetes clusters on edge appliances."
    )
    parser.add_argument("--version", action="version", version=f"edgefleet {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    validate.register(commands)
    render.register(commands)
    plan.register(commands)
    bundle.register(commands)
    serve.register(commands)
    status.register(commands)
    rollout.register(commands)
    database.register(commands)
    secret.register(commands)
    appliance.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except ModuleNotFoundError as e:
        print(
            f"edgefleet: {e.name} is not installed; the reconciler's commands need "
            "pip install 'edgefleet[server]'",
            file=sys.stderr,
        )
        return EXIT_INVALID
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    return code
