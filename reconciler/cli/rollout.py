"""``edgefleet rollout pause|resume|promote``: an admin's hand on the running rollout.

``pause`` releases nothing new (reverts still go) until ``resume``, across newer commits;
``resume`` lifts a pause and a halt (accepting the failures that halted it); ``promote
--wave W`` opens wave W now, skipping the soak of the wave before. Needs an admin token.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.terminal import printable

from .client import ClientError, add_options, call


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "rollout",
        help="pause, resume or promote the rollout (admin token)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=("pause", "resume", "promote"))
    parser.add_argument("--wave", help="the wave to open now (promote)")
    add_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "promote" and not args.wave:
        print("edgefleet: rollout promote needs --wave WAVE", file=sys.stderr)
        return 2
    if args.action != "promote" and args.wave:
        print(f"edgefleet: --wave is for promote, not {args.action}", file=sys.stderr)
        return 2
    body = {"wave": args.wave} if args.action == "promote" else None
    try:
        answer = call(args, "POST", f"/v1/rollout/{args.action}", body=body).json()
    except ClientError as e:
        print(printable(f"edgefleet: {e}", lines=False), file=sys.stderr)
        return 1
    rollout = answer.get("rollout") or {}
    where = f"{rollout.get('short', '-')} {rollout.get('state', 'none')}"
    if rollout.get("wave"):
        where += f", wave {rollout['wave']}"
    if rollout.get("paused"):
        where += ", paused"
    done = "done" if answer.get("changed") else "nothing to do"
    print(printable(f"{args.action}: {done} (by {answer.get('by')}); rollout {where}", lines=False))
    return 0
