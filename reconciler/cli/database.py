"""``edgefleet db upgrade``: bring the store's database to the schema this edgefleet runs on.

The database comes from ``--db``, then ``EDGEFLEET_DB``, then the ``db`` of a ``--config``
file, then serve's default, as ``edgefleet serve`` finds it. Back the store up first
(docs/operations.md): an upgrade is not undone.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ..store import DEFAULT_URL, StoreError, upgrade_schema
from ..store.migrations import shown
from .common import fail_usage


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "db", help="the store's database: upgrade its schema", description=__doc__
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    upgrade = actions.add_parser(
        "upgrade",
        help="migrate the database to this edgefleet's schema",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upgrade.add_argument("--db", help=f"database URL (or EDGEFLEET_DB; default: {DEFAULT_URL})")
    upgrade.add_argument("--config", type=Path, help="serve's YAML configuration file")
    upgrade.set_defaults(run=run_upgrade)


def database_url(args: argparse.Namespace) -> str:
    if args.db:
        return str(args.db)
    if os.environ.get("EDGEFLEET_DB"):
        return os.environ["EDGEFLEET_DB"]
    if args.config is not None:
        try:
            loaded = YAML(typ="safe").load(args.config.read_text())
        except (OSError, YAMLError) as e:
            raise ValueError(f"{args.config}: {e}") from None
        if isinstance(loaded, dict) and loaded.get("db"):
            return str(loaded["db"])
    return DEFAULT_URL


def run_upgrade(args: argparse.Namespace) -> int:
    try:
        url = database_url(args)
    except ValueError as e:
        return fail_usage(str(e))
    try:
        before, after = upgrade_schema(url)
    except StoreError as e:
        print(f"edgefleet: {e}", file=sys.stderr)
        return 1
    done = "nothing to do" if before == after else f"was {before}"
    print(f"database {shown(url)}: schema {after} ({done})")
    return 0
