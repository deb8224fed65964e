"""``edgefleet-agent``: the agent's command line (console script ``agent.cli:main``).

A thin edge: parse the arguments, build the collaborators, call the core, print the result.
Exit codes: 0 done, 1 a failure (one line on standard error: every
:class:`~agent.errors.AgentError` is caught here), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from agent.apply.admission import StateRefused, parse_state
from agent.apply.applying import apply_state
from agent.apply.inventory import Inventory
from agent.apply.passes import ApplyResult
from agent.clocks import SystemClock
from agent.config import AGE_KEY_NAME, DEFAULT_CONFIG, load_config
from agent.contract import SCAN_TOOLS
from agent.drivers.docker import DEFAULT_IMAGE, DockerDriver, DockerSettings, connect
from agent.errors import AgentError, one_line
from agent.link.bundles import BundleError
from agent.link.client import AGENT_VERSION, AgentLink, LinkSettings
from agent.link.syncing import rotate_token
from agent.terminal import TerminalConsole, printable
from agent.wiring import operations_for, run_offline, run_online, saved_state


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgefleet-agent", description="The edgefleet agent of one appliance."
    )
    parser.add_argument("--version", action="version", version=f"edgefleet-agent {AGENT_VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    apply = commands.add_parser(
        "apply",
        help="apply a DesiredState file once and print what happened",
        description="Apply a DesiredState JSON file to the local Docker engine once.",
    )
    apply.add_argument("--state", type=Path, required=True, help="DesiredState JSON file")
    apply.add_argument(
        "--data-dir", type=Path, required=True, help="inventory, journal and last good state"
    )
    apply.add_argument(
        "--age-key",
        type=Path,
        help=f"age identity that opens encrypted manifests (default: DATA_DIR/{AGE_KEY_NAME})",
    )
    apply.add_argument("--docker-url", help="engine address (default: DOCKER_HOST or the socket)")
    apply.add_argument(
        "--default-image",
        default=DEFAULT_IMAGE,
        help=f"node image when the state names none (default: {DEFAULT_IMAGE})",
    )
    apply.add_argument(
        "--pull",
        choices=("if-missing", "never"),
        default="if-missing",
        help="pull a missing node image, or fail the cluster (default: if-missing)",
    )
    apply.add_argument(
        "--privileged",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run node containers privileged, as k3s needs (default: yes)",
    )
    apply.add_argument(
        "--server-command",
        default="server",
        help="control-plane node command; '' runs the image's own (default: server)",
    )
    apply.add_argument(
        "--agent-command",
        default="agent",
        help="worker node command; '' runs the image's own (default: agent)",
    )
    apply.add_argument(
        "--start-timeout",
        type=float,
        default=60.0,
        help="seconds a new node has to reach running (default: 60)",
    )
    apply.add_argument("--format", choices=("text", "json"), default="text")
    apply.set_defaults(handler=_apply)
    _add_run(commands)
    _add_day_two(commands)
    return parser


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="run the agent: follow the reconciler (online) or apply a signed bundle (offline)",
        description="Run the agent with its configuration file (written by edge-installer).",
    )
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="agent.yaml")
    run.add_argument("--mode", choices=("online", "offline"), help="override the config's mode")
    run.add_argument("--bundle", type=Path, help="offline: the signed bundle to apply")
    run.add_argument(
        "--bundle-key", type=Path, help="offline: the public key (default: the config's)"
    )
    run.add_argument(
        "--allow-downgrade",
        action="store_true",
        help="offline: apply a bundle older than the one applied last",
    )
    run.add_argument(
        "--status-out", type=Path, help="offline: status file (default: DATA_DIR/status.json)"
    )
    run.add_argument("--once", action="store_true", help="online: one pass, then exit")
    run.add_argument("--wait", type=float, default=30.0, help="long-poll seconds (default: 30)")
    run.set_defaults(handler=_run)
    rotate = commands.add_parser(
        "rotate-token",
        help="swap the agent's token for a new one (the old one stops working at once)",
        description="Present the agent's current token to the reconciler and keep the new "
        "one it answers with; a running agent uses the new one from its next request.",
    )
    rotate.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="agent.yaml")
    rotate.set_defaults(handler=_rotate)


def _add_day_two(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    now = commands.add_parser(
        "run-now", help="run a cluster's OS patch, scans or backup now, whatever its schedule"
    )
    now.add_argument("kind", choices=("patch", "scan", "backup"))
    now.add_argument("--cluster", required=True)
    now.add_argument("--scan", choices=tuple(SCAN_TOOLS))
    now.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="agent.yaml")
    now.set_defaults(handler=_run_now)
    restore = commands.add_parser(
        "restore", help="verify a backup's checksums, then restore it into a cluster"
    )
    restore.add_argument("--backup", required=True, help="backup ID, e.g. pos-20261125T020000Z")
    restore.add_argument("--cluster", help="restore into this cluster (default: the backup's)")
    restore.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="agent.yaml")
    restore.set_defaults(handler=_restore)


def _run_now(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with operations_for(config) as operations:
        state = saved_state(config)
        results = operations.run_now(args.kind, state=state, cluster=args.cluster, scan=args.scan)
    print(json.dumps([r.to_json() for r in results], indent=2, default=str))
    return 0 if all(str(r.state) == "done" for r in results) else 1


def _restore(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with operations_for(config) as operations:
        result = operations.restore(args.backup, state=saved_state(config), cluster=args.cluster)
    print(json.dumps(result.to_json(), indent=2, default=str))
    return 0


def _rotate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if not config.apiUrl:
        return _fail(f"{args.config}: apiUrl is required to rotate the token")
    with AgentLink(LinkSettings.from_config(config, keys=False)) as link:
        rotate_token(link, Path(config.tokenFile), hostname=os.uname().nodename)
    print(f"rotated the token of {config.applianceId} in {config.tokenFile}")
    return 0


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if (args.mode or config.mode) == "offline":
        if args.bundle is None:
            return _fail("--bundle is required in offline mode")
        configured = config.bundleKey or config.serverKey
        key = args.bundle_key or (Path(configured) if configured else None)
        if key is None:
            return _fail("no public key: pass --bundle-key or set serverKey in the config")
        status = args.status_out or Path(config.dataDir) / "status.json"
        return run_offline(
            config,
            bundle=args.bundle,
            status_out=status,
            key=key,
            allow_downgrade=args.allow_downgrade,
        )
    if not config.apiUrl:
        return _fail(f"{args.config}: apiUrl is required in online mode")
    if not config.serverKey:
        return _fail(
            f"{args.config}: serverKey is required in online mode: states are verified "
            "against the reconciler's public key (edge-installer --server-key)"
        )
    return run_online(config, once=args.once, wait=args.wait)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except AgentError as e:
        return _fail(_said(e))
    return code


def _said(error: AgentError) -> str:
    """The error as one line; a refused state or bundle says so first."""
    if isinstance(error, BundleError):
        return f"bundle refused: {one_line(error, limit=2000)}"
    if isinstance(error, StateRefused):
        return f"refused: {one_line(error, limit=2000)}"
    return one_line(error, limit=2000)


def _apply(args: argparse.Namespace) -> int:
    try:
        state = parse_state(args.state.read_bytes())
    except OSError as e:
        return _fail(f"{args.state}: {e.strerror}")
    settings = DockerSettings(
        default_image=args.default_image,
        server_command=_command(args.server_command),
        agent_command=_command(args.agent_command),
        privileged=args.privileged,
        pull=args.pull,
    )
    client = connect(args.docker_url)
    try:
        with Inventory.open(args.data_dir) as inventory:
            result = apply_state(
                state,
                driver=DockerDriver(client=client, settings=settings),
                inventory=inventory,
                clock=SystemClock(),
                start_timeout=args.start_timeout,
                age_key=args.age_key or args.data_dir / AGE_KEY_NAME,
            )
    finally:
        client.close()
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        _print(result)
    return 0 if result.ok else 1


def _command(text: str) -> tuple[str, ...] | None:
    words = tuple(shlex.split(text))
    return words or None


def _print(result: ApplyResult) -> None:
    console = TerminalConsole(soft_wrap=True)
    table = Table(title=f"{result.appliance} at {result.revision} ({result.digest[:19]})")
    for column in ("cluster", "phase", "tasks", "reason"):
        table.add_column(column)
    for cluster in result.clusters:
        done = sum(1 for task in cluster.tasks if task.state == "done")
        reason = "" if cluster.reason is None else f"{cluster.reason}: {cluster.message}"
        table.add_row(cluster.name, cluster.phase, f"{done}/{len(cluster.tasks)}", reason)
    console.print(table)
    for event in (*result.recovered, *(e for c in result.clusters for e in c.events)):
        console.print(f"{event.at:%H:%M:%S} {event.cluster} {event.kind}: {event.message}")


def _fail(message: str) -> int:
    print(printable(f"edgefleet-agent: {message}", lines=False), file=sys.stderr)
    return 1
