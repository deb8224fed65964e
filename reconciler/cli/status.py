"""``edgefleet status [--server URL] [--token-file F] [--site S]``: where the fleet stands.

Reads ``GET /v1/fleet`` (or ``GET /v1/sites/S``) from a running reconciler with a viewer
token and prints a table per site: wave, rollout state, revision, appliances and their
health, clusters and their phase; above it the current revision, the rollout (paused,
halted with the failing sites and the ``git revert`` that undoes them) and the last failed
commit with its errors. Exit 0 when the server answered, 1 when it could not be reached or
refused.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from agent.contract import StatusReport
from agent.terminal import TerminalConsole, printable

from ..rollout import RolloutService
from ..store import Store, StoreError
from ..views import FleetView, SiteView
from .client import ClientError, add_options, call


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "status",
        help="show sites, appliances, clusters, revision, wave, health and the last failure",
        description="Show the fleet as a running reconciler sees it.",
    )
    add_options(parser)
    parser.add_argument("--site", help="show one site in detail")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    imported = actions.add_parser(
        "import",
        help="take the status file an offline agent wrote (edgefleet-agent run --mode offline)",
        description="Record an offline appliance's status file in the reconciler's database.",
    )
    imported.add_argument("file", type=Path, help="status file from the offline agent")
    imported.add_argument(
        "--db",
        default=os.environ.get("EDGEFLEET_DB", "sqlite:///edgefleet.db"),
        help="the reconciler's database URL (default: $EDGEFLEET_DB or sqlite:///edgefleet.db)",
    )
    imported.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    """Record the report as if the agent had posted it; gates move as they would online."""
    errors = TerminalConsole(stderr=True, soft_wrap=True)
    try:
        document = json.loads(args.file.read_text())
        appliance = str(document["appliance"])
        report = StatusReport.model_validate(document["report"])
    except OSError as e:
        errors.print(f"edgefleet: {args.file}: {e.strerror}")
        return 2
    except (ValueError, KeyError, TypeError, ValidationError) as e:
        errors.print(f"edgefleet: {args.file}: not an agent status file ({type(e).__name__})")
        return 1
    try:
        store = Store(args.db)
        RolloutService(store=store).accept_report(appliance, report)
    except StoreError as e:
        errors.print(f"edgefleet: {args.db}: {e}")
        return 1
    applied = report.appliedDigest[:19] if report.appliedDigest else "nothing"
    print(printable(f"imported {appliance}: {report.health}, applied {applied}", lines=False))
    return 0


def run(args: argparse.Namespace) -> int:
    path = f"/v1/sites/{args.site}" if args.site else "/v1/fleet"
    # site names, versions, waiting reasons, errors and events are data: never rich markup,
    # and every control character in them is shown escaped
    wide = None if Console().is_terminal else 200
    console = TerminalConsole(width=wide)
    errors = TerminalConsole(stderr=True, soft_wrap=True)
    try:
        answer = call(args, "GET", path)
    except ClientError as e:
        errors.print(f"edgefleet: {e}")
        return 1
    if args.format == "json":
        print(json.dumps(answer.json(), indent=2, sort_keys=True))
    elif args.site:
        print_site(console, SiteView.model_validate_json(answer.content))
    else:
        print_fleet(console, FleetView.model_validate_json(answer.content))
    return 0


def print_fleet(console: Console, fleet: FleetView) -> None:
    if fleet.revision is not None:
        r = fleet.revision
        by = f"  {r.author}: {r.subject}" if r.author or r.subject else ""
        console.print(f"revision      {r.short}  (recorded {r.recordedAt:%Y-%m-%d %H:%M} UTC){by}")
    else:
        console.print("revision      none recorded yet")
    if fleet.source is not None:
        src = fleet.source
        if src.ok:
            fetched = f"{src.lastFetchedAt:%Y-%m-%d %H:%M} UTC" if src.lastFetchedAt else "never"
            console.print(f"source        {src.url} {src.branch}, fetched {fetched}")
        else:
            since = f"{src.failingSince:%Y-%m-%d %H:%M} UTC" if src.failingSince else "now"
            console.print(f"source        {src.url} {src.branch}, failing since {since}:")
            console.print(f"  {src.error}", markup=False, highlight=False)
    if fleet.rollout is not None:
        ro = fleet.rollout
        wave = f"wave {ro.wave} ({ro.waveIndex + 1}/{len(ro.waves)})" if ro.wave else "all waves"
        done = f"{ro.sitesDone}/{ro.sitesChanged} changed sites done"
        failing = f"; failing: {', '.join(ro.failing)}" if ro.failing else ""
        paused = f", paused by {ro.pausedBy}" if ro.paused else ""
        console.print(f"rollout       {ro.short} {ro.state}{paused}, {wave}, {done}{failing}")
        for failure in ro.failures:
            console.print(f"  {failure.site} failed: {failure.error}")
            for command in failure.revert:
                console.print(f"    undo with: {command}")
        if ro.accepted:
            console.print(f"  failures accepted on resume: {', '.join(ro.accepted)}")
    if fleet.lastFailure is not None:
        f = fleet.lastFailure
        when = "newer than the current revision" if f.current else "older"
        console.print(
            f"last failure  {f.short}  ({f.recordedAt:%Y-%m-%d %H:%M} UTC, {when}, "
            f"{len(f.errors)} error{'' if len(f.errors) == 1 else 's'})",
        )
        for error in f.errors[:10]:
            console.print(f"  {error}")
    if fleet.reporting is not None:
        tally = ", ".join(f"{n} {state}" for state, n in sorted(fleet.reporting.counts.items()))
        console.print(f"reporting     {tally}")
        for d in fleet.reporting.recent[:5]:
            sha = f" {d.revision[:7]}" if d.revision else ""
            tries = f", {d.attempts} attempts" if d.attempts > 1 else ""
            console.print(
                f"  {d.updatedAt:%Y-%m-%d %H:%M:%S}  {d.destination}: {d.event}{sha} "
                f"{d.state}{tries}" + (f" ({d.detail})" if d.detail else "")
            )
    table = Table(show_lines=False)
    for column in ("site", "wave", "state", "revision", "appliances", "clusters", "health"):
        table.add_column(column)
    for s in fleet.sites:
        state = s.state + (f": {s.waiting}" if s.waiting else "")
        counts = s.appliances
        appliances = f"{counts.total} ({counts.healthy} healthy"
        appliances += f", {counts.unpaired} unpaired)" if counts.unpaired else ")"
        clusters = ", ".join(f"{c.name} {c.phase} {c.progress}%" for c in s.clusters)
        table.add_row(
            s.name,
            s.wave or "-",
            state,
            s.revision[:7] if s.revision else "mixed",
            appliances,
            clusters or "-",
            s.health,
        )
    console.print(table)
    for a in fleet.discovered:
        console.print(
            f"discovered    {a.id} ({a.hostname}, {a.ip}, {a.arch}, agent {a.agentVersion})",
        )


def print_site(console: Console, site: SiteView) -> None:
    console.print(f"site {site.name}  wave {site.wave or '-'}  {site.state}  {site.waiting}")
    appliances = Table(title="appliances")
    for column in ("appliance", "name", "status", "health", "host", "served", "applied", "waiting"):
        appliances.add_column(column)
    for a in site.appliances:
        appliances.add_row(
            a.id,
            a.name or "-",
            a.status,
            a.health,
            f"{a.hostname or '-'} {a.ip or ''}",
            (a.servedDigest or "-")[7:19],
            (a.appliedDigest or "-")[7:19],
            a.error or a.waiting,
        )
    console.print(appliances)
    clusters = Table(title="clusters")
    for column in ("cluster", "phase", "progress", "tasks"):
        clusters.add_column(column)
    for c in site.clusters:
        tasks = "; ".join(f"{t.appliance}: {t.name} {t.state} {t.progress}%" for t in c.tasks)
        name = f"{c.name}\n{c.description}" if c.description else c.name
        clusters.add_row(name, c.phase, f"{c.progress}%", tasks or "-")
    console.print(clusters)
    policies = Table(title="day-2: last scan of each type, last backup, last patch of each node")
    for column in ("cluster", "run", "state", "when", "result"):
        policies.add_column(column)
    for c in site.clusters:
        for scan in c.scans:
            result = f"{scan.passed} pass, {scan.warned} warn, {scan.failed} fail"
            result += f", {scan.errored} could not run" if scan.errored else ""
            made = " ".join(filter(None, (scan.tool, scan.toolVersion, scan.benchmark)))
            policies.add_row(c.name, f"scan {scan.scan} ({made})", scan.state,
                             f"{scan.at:%Y-%m-%d %H:%M}", scan.error or result)  # fmt: skip
        if c.backup is not None:
            b = c.backup
            policies.add_row(
                c.name, f"backup {b.name}", b.state, f"{b.at:%Y-%m-%d %H:%M}", b.detail
            )
        for p in c.patches:
            policies.add_row(c.name, f"patch {p.name}", p.state, f"{p.at:%Y-%m-%d %H:%M}", p.detail)
    if policies.row_count:
        console.print(policies)
    for e in site.events[:10]:
        console.print(f"{e.at:%Y-%m-%d %H:%M:%S}  {e.level:7} {e.message}")
