"""The plan as text (a terminal) and as JSON (every site's change, for tools), and the
pieces the markdown comment shares with them."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from zoneinfo import ZoneInfo

from ..planning import ClusterChange, Plan, SiteChange

_MARK = {"added": "+", "removed": "-", "changed": "~", "replaced": "~", "restarted": "~"}


def as_json(plan: Plan) -> str:
    """Every site's change, the groups by site name, the waves, windows and warnings."""
    document = dataclasses.asdict(plan)
    document["summary"] = plan.summary
    document["groups"] = [{"sites": list(g.sites), "shownFor": g.change.name} for g in plan.groups]
    return json.dumps(document, indent=2, default=_json_value) + "\n"


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def cluster_lines(cluster: ClusterChange, indent: str) -> list[str]:
    lines = [
        f"{indent}{_MARK[cluster.kind]} cluster {cluster.name} ({cluster.mode}) {cluster.kind}"
    ]
    deeper = indent + "    "
    for pack in cluster.packs:
        lines.append(f"{deeper}pack {pack}")
    for node in cluster.nodes:
        why = f"; {', '.join(node.fields)} changed" if node.fields else ""
        effect = node.effect.removesuffix(")") + why + ")" if "(" in node.effect else node.effect
        lines.append(f"{deeper}{_MARK[node.kind]} node {node.node} on {node.appliance} {effect}")
    for i, step in enumerate(cluster.order, start=1):
        lines.append(f"{deeper}step {i}: {step}")
    for schedule in cluster.schedules:
        lines.append(f"{deeper}schedule {schedule}")
    for manifest in cluster.manifests:
        lines.append(f"{deeper}manifest {manifest}")
    return lines


def site_lines(site: SiteChange) -> list[str]:
    lines = [f"{_MARK[site.kind]} site {site.name} {site.kind}"]
    for a in site.appliances:
        arrow = f"{(a.before or '-')[:19]} → {(a.after or '-')[:19]}"
        disruptive = " (restarts, replaces or removes nodes)" if a.disruptive else ""
        lines.append(f"  {_MARK[a.kind]} appliance {a.appliance} {arrow}{disruptive}")
    for cluster in site.clusters:
        lines += cluster_lines(cluster, "  ")
    return lines


def base_note(plan: Plan) -> str:
    """Why the plan compares with another commit than the base asked for; empty if not."""
    sub = plan.substitute
    if sub is None:
        return ""
    back = "commit" if sub.skipped == 1 else "commits"
    first = f": {sub.problems[0]}" if sub.problems else ""
    return (
        f"the base {sub.requested[:12]} does not validate ({sub.count} "
        f"problem{'s' if sub.count != 1 else ''}{first}); this plan compares with "
        f"{plan.base[:12]}, its nearest ancestor that validates ({sub.skipped} {back} back)"
    )


def window_text(opens: datetime | None, timezone: str) -> str:
    if opens is None:
        return "a window is open now"
    local = opens.astimezone(ZoneInfo(timezone))
    return f"{local:%a %Y-%m-%d %H:%M} {timezone}"


def as_text(plan: Plan) -> str:
    lines = [f"plan {plan.base[:12]}..{plan.head[:12]}: {plan.summary}"]
    if plan.substitute is not None:
        lines.append(f"note: {base_note(plan)}")
    lines.append("")
    if plan.sites:
        lines.append("waves, in rollout order:")
        for i, wave in enumerate(plan.outlook.waves, start=1):
            lines.append(
                f"  {i}. {wave.name}: {len(wave.sites)} sites, {wave.clusters} clusters, "
                f"nodes {wave.nodes_added} added, {wave.nodes_restarted} restarted, "
                f"{wave.nodes_replaced} replaced, {wave.nodes_removed} removed"
                + (f" ({wave.nodes_losing_data} lose their data)" if wave.nodes_losing_data else "")
            )
        for warning in plan.outlook.warnings:
            lines.append(f"warning: {warning}")
        for hold in plan.outlook.held:
            lines.append(
                f"held: {hold.site} ({hold.wave}) restarts or replaces nodes in its maintenance "
                "window: "
                f"{window_text(hold.opens, hold.timezone)} ({hold.windows})"
            )
        if plan.outlook.unheld:
            lines.append(
                "no maintenance window: "
                + ", ".join(plan.outlook.unheld)
                + " restart or replace nodes as soon as their wave reaches them"
            )
        lines.append("")
    for group in plan.groups:
        site = group.change
        if len(group.sites) > 1:
            lines.append(
                f"the same change at {len(group.sites)} sites (shown for {site.name}): "
                + ", ".join(group.sites)
            )
        lines += site_lines(site)
        if site.diff:
            lines += ["", *("    " + line for line in site.diff.splitlines())]
        lines.append("")
    return "\n".join(lines) + ("\n" if not plan.sites else "")
