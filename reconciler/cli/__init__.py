"""The ``edgefleet`` command: parse arguments, call the core, map results to exit codes.

Exit codes: 0 ok, 1 invalid input or a failed check, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import appliance, bundle, plan, render, rollout, serve, status, validate

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgefleet", description="GitOps for Kubernetes clusters on edge appliances."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    validate.register(commands)
    render.register(commands)
    plan.register(commands)
    bundle.register(commands)
    serve.register(commands)
    status.register(commands)
    rollout.register(commands)
    appliance.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    return code
