"""The plan as markdown for a pull-request comment, shortened to fit one.

It opens with the summary (what changes in each wave, in rollout order; the node
replacements maintenance windows hold; the warnings), then each group of sites that change
the same way, once, collapsed. Forges refuse longer comments (GitHub: 65,536 characters), so
past ``limit`` it gives up detail in this order: the full lists of site names, then the diffs
(each cut to an equal share), then the site trees; groups that still do not fit are counted.
``--out FILE`` writes the whole plan beside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..planning import ChangeGroup, Plan
from . import plan_text as text

LIMIT = 60_000
SUMMARY_ROWS = 20  # held sites and the like listed one by one in the summary
NAMES_SHOWN = 100  # site names of a group, once it is shortened
COMPACT_NAMES = 20
COMPACT_LINES = 30
FENCE_COST = 120  # a diff fence and its "cut" note, in characters


@dataclass(frozen=True)
class _Detail:
    names: int | None  # site names listed (None: all)
    diff: int | None  # characters of diff (None: all, 0: none)
    lines: int | None  # lines of the site tree (None: all)


FULL = _Detail(None, None, None)
COMPACT = _Detail(COMPACT_NAMES, 0, COMPACT_LINES)


def as_markdown(plan: Plan, *, limit: int | None = LIMIT) -> str:
    head = _head(plan)
    groups = list(plan.groups)
    cut_note = (
        "_Shortened to fit a comment. The whole plan is written by `edgefleet plan ... "
        "--out plan.md` (or `plan.json`), kept as this run's artifact._\n"
    )
    whole = head + "".join(_group(i, g, FULL) for i, g in enumerate(groups, 1))
    if limit is None or len(whole) <= limit:
        return whole
    budget = limit - len(head) - len(cut_note) - 200  # 200: the "not shown" line
    # 1. names shortened, each diff cut to an equal share of what is left
    bare = [_group(i, g, _Detail(NAMES_SHOWN, 0, None)) for i, g in enumerate(groups, 1)]
    spare = budget - sum(len(b) for b in bare)
    if spare >= 0:
        share = _share([len(g.change.diff) for g in groups], spare)
        blocks = [_group(i, g, _Detail(NAMES_SHOWN, share, None)) for i, g in enumerate(groups, 1)]
        while sum(len(b) for b in blocks) > budget and share > 0:
            share = share * 9 // 10
            blocks = [
                _group(i, g, _Detail(NAMES_SHOWN, share, None)) for i, g in enumerate(groups, 1)
            ]
        if sum(len(b) for b in blocks) <= budget:
            return head + "".join(blocks) + cut_note
    # 2. compact groups while they fit; the rest counted
    shown: list[str] = []
    used = 0
    for i, group in enumerate(groups, 1):
        block = _group(i, group, COMPACT)
        if used + len(block) > budget:
            break
        shown.append(block)
        used += len(block)
    rest = groups[len(shown) :]
    tail = ""
    if rest:
        sites = sum(len(g.sites) for g in rest)
        tail = f"_…and {len(rest):,} more changes at {sites:,} sites, not shown here._\n\n"
    return head + "".join(shown) + tail + cut_note


def _share(sizes: list[int], spare: int) -> int:
    """The largest per-diff share c with sum(min(size, c) + fence) <= spare."""
    low, high = 0, max(sizes, default=0)

    def cost(c: int) -> int:
        return sum(min(size, c) + FENCE_COST for size in sizes if size and c)

    while low < high:
        middle = (low + high + 1) // 2
        if cost(middle) <= spare:
            low = middle
        else:
            high = middle - 1
    return low


def _head(plan: Plan) -> str:
    out = [
        "### edgefleet plan",
        "",
        f"**{plan.summary}** (`{plan.base[:12]}` → `{plan.head[:12]}`)",
        "",
    ]
    if plan.substitute is not None:
        out += [f"> **Note:** {text.base_note(plan)}.", ""]
    if not plan.sites:
        return "\n".join(out) + "\n"
    look = plan.outlook
    out += [
        "| wave (rollout order) | sites | clusters | nodes added | restarted | replaced "
        "| removed | lose their data |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, wave in enumerate(look.waves, start=1):
        out.append(
            f"| {i}. {wave.name} | {len(wave.sites):,} | {wave.clusters:,} | "
            f"{wave.nodes_added:,} | {wave.nodes_restarted:,} | {wave.nodes_replaced:,} | "
            f"{wave.nodes_removed:,} | {wave.nodes_losing_data:,} |"
        )
    out.append("")
    for warning in look.warnings:
        out.append(f"- :warning: {warning}")
    if look.warnings:
        out.append("")
    if look.held:
        out += [
            "**Node restarts and replacements held by maintenance windows**",
            "",
            "| site | wave | next window | windows |",
            "|---|---|---|---|",
        ]
        for hold in look.held[:SUMMARY_ROWS]:
            out.append(
                f"| `{hold.site}` | {hold.wave} | {text.window_text(hold.opens, hold.timezone)} "
                f"| {hold.windows} |"
            )
        if len(look.held) > SUMMARY_ROWS:
            out.append(f"| …and {len(look.held) - SUMMARY_ROWS:,} more sites | | | |")
        out.append("")
    if look.unheld:
        names = ", ".join(f"`{s}`" for s in look.unheld[:SUMMARY_ROWS])
        more = len(look.unheld) - SUMMARY_ROWS
        names += f" and {more:,} more" if more > 0 else ""
        out += [
            "Restarted or replaced as soon as their wave reaches them (no maintenance "
            f"window): {names}.",
            "",
        ]
    changes = len(plan.groups)
    out += [f"**{changes:,} distinct change{'s' if changes != 1 else ''}**", ""]
    return "\n".join(out) + "\n"


def _group(index: int, group: ChangeGroup, detail: _Detail) -> str:
    site = group.change
    count = len(group.sites)
    first = ", ".join(f"<code>{s}</code>" for s in group.sites[:3])
    first += ", …" if count > 3 else ""
    # the clusters by a name that holds for every site of the group: store-1-pos → <site>-pos
    own = re.compile(rf"(?<![A-Za-z0-9]){re.escape(site.name)}(?![A-Za-z0-9])")
    what = "; ".join(
        f"cluster {own.sub('&lt;site&gt;', c.name) if count > 1 else c.name} {c.kind}"
        + (" (restarts or replaces nodes)" if c.replaces_nodes else "")
        + (" (loses node data)" if c.loses_data and c.kind == "changed" else "")
        for c in site.clusters
    )
    plural = "s" if count != 1 else ""
    out = [
        f"<details><summary>{index}. {count:,} site{plural} ({first}): {site.kind}"
        + (f" — {what}" if what else "")
        + "</summary>",
        "",
    ]
    if count > 1:
        names = group.sites if detail.names is None else group.sites[: detail.names]
        listed = ", ".join(f"`{s}`" for s in names)
        if len(names) < count:
            listed += f" and {count - len(names):,} more"
        out += [
            f"Sites: {listed}",
            "",
            f"Shown for `{site.name}`; the others differ only in their names.",
            "",
        ]
    lines = text.site_lines(site)
    if detail.lines is not None and len(lines) > detail.lines:
        lines = [*lines[: detail.lines], f"… {len(lines) - detail.lines} more lines"]
    out += ["```", *lines, "```"]
    if site.diff and detail.diff != 0:
        diff = site.diff if detail.diff is None else _cut(site.diff, detail.diff)
        out += ["", "```diff", diff.rstrip("\n"), "```"]
    out += ["", "</details>", ""]
    return "\n".join(out) + "\n"


def _cut(diff: str, size: int) -> str:
    if len(diff) <= size:
        return diff
    kept = diff[:size].rsplit("\n", 1)[0]
    more = diff.count("\n") - kept.count("\n")
    return f"{kept}\n… {more:,} more lines of this diff in the whole plan (--out)\n"
