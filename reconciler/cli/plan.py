"""``edgefleet plan [REPO] --base REV --head REV [--format text|markdown|json]``."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from agent.terminal import printable

from ..errors import FleetError
from ..planning import BaseInvalid, ClusterChange, Plan, SiteChange, make_plan
from ..rendering import Renderer
from ..sources import GitRepository, SourceError
from .common import add_limit_options, builtin_packs, fail_usage, limits_of, print_problems

_MARK = {"added": "+", "removed": "-", "changed": "~", "replaced": "~"}


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
    add_limit_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        renderer = Renderer(limits_of(args))
    except ValueError as e:
        return fail_usage(str(e))
    try:
        git = GitRepository(Path(args.repo))
        plan = make_plan(git, args.base, args.head, builtin=builtin_packs(), renderer=renderer)
    except SourceError as e:
        return fail_usage(str(e))
    except BaseInvalid as e:
        print(f"the base revision {args.base} does not validate:")
        print_problems(e.diagnostics)
        return 1
    except FleetError as e:
        print_problems(e.diagnostics)
        return 1
    formats = {"text": as_text, "markdown": as_markdown, "json": as_json}
    # rendered manifests are data: a control character in a diff is shown escaped
    print(printable(formats[args.format](plan)), end="")
    return 0


def as_json(plan: Plan) -> str:
    document = dataclasses.asdict(plan)
    document["summary"] = plan.summary
    return json.dumps(document, indent=2) + "\n"


def _cluster_lines(cluster: ClusterChange, indent: str) -> list[str]:
    lines = [
        f"{indent}{_MARK[cluster.kind]} cluster {cluster.name} ({cluster.mode}) {cluster.kind}"
    ]
    deeper = indent + "    "
    for pack in cluster.packs:
        lines.append(f"{deeper}pack {pack}")
    for node in cluster.nodes:
        why = f" ({', '.join(node.fields)} changed)" if node.fields else ""
        lines.append(
            f"{deeper}{_MARK[node.kind]} node {node.node} on {node.appliance} {node.kind}{why}"
        )
    for i, step in enumerate(cluster.order, start=1):
        lines.append(f"{deeper}step {i}: {step}")
    for schedule in cluster.schedules:
        lines.append(f"{deeper}schedule {schedule}")
    for manifest in cluster.manifests:
        lines.append(f"{deeper}manifest {manifest}")
    return lines


def _site_lines(site: SiteChange) -> list[str]:
    lines = [f"{_MARK[site.kind]} site {site.name} {site.kind}"]
    for a in site.appliances:
        arrow = f"{(a.before or '-')[:19]} → {(a.after or '-')[:19]}"
        disruptive = " (replaces or removes nodes)" if a.disruptive else ""
        lines.append(f"  {_MARK[a.kind]} appliance {a.appliance} {arrow}{disruptive}")
    for cluster in site.clusters:
        lines += _cluster_lines(cluster, "  ")
    return lines


def as_text(plan: Plan) -> str:
    lines = [f"plan {plan.base[:12]}..{plan.head[:12]}: {plan.summary}", ""]
    for site in plan.sites:
        lines += _site_lines(site)
        if site.diff:
            lines += ["", *("    " + line for line in site.diff.splitlines())]
        lines.append("")
    return "\n".join(lines) + ("\n" if not plan.sites else "")


def as_markdown(plan: Plan) -> str:
    out = [
        "### edgefleet plan",
        "",
        f"**{plan.summary}** (`{plan.base[:12]}` → `{plan.head[:12]}`)",
        "",
    ]
    if plan.sites:
        out += ["| site | change | appliances | clusters |", "|---|---|---|---|"]
        for site in plan.sites:
            clusters = ", ".join(f"{c.name} ({c.kind})" for c in site.clusters) or "—"
            out.append(f"| `{site.name}` | {site.kind} | {len(site.appliances)} | {clusters} |")
        out.append("")
    for site in plan.sites:
        out += [
            f"<details><summary><code>{site.name}</code>: {site.kind}</summary>",
            "",
            "```",
            *_site_lines(site),
            "```",
        ]
        if site.diff:
            out += ["", "```diff", site.diff.rstrip("\n"), "```"]
        out += ["", "</details>", ""]
    return "\n".join(out) + "\n"
