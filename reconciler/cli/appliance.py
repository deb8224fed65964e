"""``edgefleet appliance reset|enroll ID``: an admin's hand on an appliance's pairing.

``reset`` forgets the appliance's registration: its token stops working at once and its
next registration pairs it again (a replaced or reinstalled appliance). ``enroll`` prints a
one-time enrolment token bound to the ID, for ``edge-installer --registration-token``; it
registers that appliance once, until it expires (``--ttl``, default 24h). Needs an admin
token.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.windows import WindowInvalid, parse_duration

from .client import ClientError, add_options, call


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "appliance",
        help="reset an appliance's pairing or issue a one-time enrolment token (admin token)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=("reset", "enroll"))
    parser.add_argument("appliance", metavar="ID", help="the appliance ID")
    parser.add_argument("--ttl", help="enroll: how long the token is valid (default: 24h)")
    add_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "reset" and args.ttl:
        print("edgefleet: --ttl is for enroll, not reset", file=sys.stderr)
        return 2
    body = None
    if args.action == "enroll":
        try:
            ttl = parse_duration(args.ttl or "24h").total_seconds()
        except WindowInvalid as e:
            print(f"edgefleet: --ttl: {e}", file=sys.stderr)
            return 2
        if not 60 <= ttl <= 30 * 86_400:
            print("edgefleet: --ttl must be between 1m and 30d", file=sys.stderr)
            return 2
        body = {"ttlSeconds": int(ttl)}
    try:
        answer = call(args, "POST", f"/v1/appliances/{args.appliance}/{args.action}", body=body)
    except ClientError as e:
        print(f"edgefleet: {e}", file=sys.stderr)
        return 1
    done = answer.json()
    if args.action == "reset":
        what = (
            "its token no longer works; its next registration pairs it again"
            if done.get("registered")
            else "it was not registered"
        )
        print(f"reset {args.appliance} (by {done.get('by')}): {what}")
        return 0
    # the token alone on standard output, so `$(edgefleet appliance enroll ID)` takes it
    print(done["token"])
    discovered = "" if done.get("declared") else "; not in the fleet repository: discovered"
    print(
        f"one-time enrolment token for {args.appliance}, valid until {done['expiresAt']}"
        f"{discovered}: edge-installer -d {args.appliance} --registration-token TOKEN ...",
        file=sys.stderr,
    )
    return 0
