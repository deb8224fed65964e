"""What changes between two renderings of a site: appliances, clusters, nodes, schedules and
the manifests, as data that plan prints and the rollout uses to spot disruptive changes."""

from __future__ import annotations

import difflib
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

from agent.contract import ClusterState, DesiredState, ManifestFile, Mode, Node
from agent.naming import effect

from .secrets import secret_change

Kind = Literal["added", "removed", "changed"]


NodeKind = Literal["added", "removed", "restarted", "replaced"]


@dataclass(frozen=True)
class NodeChange:
    """What a change does to one node: ``restarted`` on its own disks (a change k3s applies
    by restart), ``replaced`` (made again from its image; a server rejoins the cluster), or
    added or removed; ``loses_data``: its data volume is made anew (or goes with it)."""

    node: str
    pool: str
    appliance: str
    kind: NodeKind
    fields: tuple[str, ...] = ()  # what made the restart or replacement necessary
    loses_data: bool = False

    @property
    def effect(self) -> str:
        """The change in words: "restarted (keeps its data)"."""
        if self.kind == "added":
            return "added"
        if self.kind == "removed":
            return "removed (its data volume goes)"
        data = "loses its data" if self.loses_data else "keeps its data"
        return f"{self.kind} ({data})"


@dataclass(frozen=True)
class ClusterChange:
    name: str
    kind: Kind
    mode: str
    nodes: tuple[NodeChange, ...]
    order: tuple[str, ...]  # the steps node replacements take, in order
    packs: tuple[str, ...]  # "k3s 1.30.4 → 1.30.6"
    schedules: tuple[str, ...]  # "backup: 0 1 * * * → 0 2 * * *"
    manifests: tuple[str, ...]  # manifest files added, changed or removed

    @property
    def replaces_nodes(self) -> bool:
        return any(n.kind in ("replaced", "restarted") for n in self.nodes)

    @property
    def loses_data(self) -> bool:
        return any(n.loses_data for n in self.nodes)


@dataclass(frozen=True)
class ApplianceChange:
    appliance: str
    kind: Kind
    before: str | None  # digest
    after: str | None
    disruptive: bool  # nodes on it are replaced or removed


@dataclass(frozen=True)
class SiteChange:
    name: str
    kind: Kind
    appliances: tuple[ApplianceChange, ...]
    clusters: tuple[ClusterChange, ...]
    diff: str  # unified diff of the rendered manifests


MASK = "***"


def compare_site(
    name: str,
    before: Mapping[str, DesiredState],
    after: Mapping[str, DesiredState],
    *,
    mask: Iterable[str] = (),
) -> SiteChange | None:
    """The change from ``before`` to ``after`` (appliance → state); None when nothing changes.
    Strings in ``mask`` (sensitive variable values) never appear in the diff."""
    appliances = tuple(_appliance_changes(before, after))
    if not appliances:
        return None
    old, new = _clusters(before.values()), _clusters(after.values())
    clusters = []
    diff: list[str] = []
    for cluster in sorted(set(old) | set(new)):
        change = _cluster_change(cluster, old.get(cluster), new.get(cluster))
        if change is not None:
            clusters.append(change)
        diff += _manifest_diff(name, cluster, old.get(cluster), new.get(cluster))
    kind: Kind = "added" if not before else "removed" if not after else "changed"
    text = "".join(diff)
    for secret in sorted(mask, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return SiteChange(name, kind, appliances, tuple(clusters), text)


def _appliance_changes(
    before: Mapping[str, DesiredState], after: Mapping[str, DesiredState]
) -> Iterable[ApplianceChange]:
    for appliance in sorted(set(before) | set(after)):
        a, b = before.get(appliance), after.get(appliance)
        if a is not None and b is not None and a.digest == b.digest:
            continue
        kind: Kind = "added" if a is None else "removed" if b is None else "changed"
        yield ApplianceChange(
            appliance,
            kind,
            a.digest if a else None,
            b.digest if b else None,
            disruptive=disruptive(a.clusters if a else (), b.clusters if b else ()),
        )


def disruptive(before: Iterable[ClusterState], after: Iterable[ClusterState]) -> bool:
    """Whether going from the clusters ``before`` to those ``after`` restarts, replaces or
    removes a node of a present cluster: the one rule that plan shows and the rollout holds
    for maintenance windows and takes one appliance at a time (a restart stops a node too:
    a control plane restarting on two appliances at once loses its quorum)."""
    old = _present_nodes(before)
    new = _present_nodes(after)
    return any(
        name not in new or node_kind(node, new[name][0], mode) is not None
        for name, (node, mode) in old.items()
    )


def node_kind(before: Node, after: Node, mode: Mode) -> tuple[NodeKind, bool] | None:
    """What changing ``before`` into ``after`` does to the node, and whether it loses its
    data; None when nothing. The agent names its containers and volumes by the same rule
    (:func:`agent.naming.effect`), so the plan says what it will do."""
    found = effect(before, after, mode=mode)
    if found is None:
        return None
    if found == "restart":
        return "restarted", False
    return "replaced", found == "lose-data"


def _present_nodes(clusters: Iterable[ClusterState]) -> dict[str, tuple[Node, Mode]]:
    return {
        f"{c.name}/{n.name}": (n, c.mode) for c in clusters if c.phase == "present" for n in c.nodes
    }


def _spec(node: Node) -> dict[str, object]:
    return node.model_dump(exclude={"name"})


def _clusters(states: Iterable[DesiredState]) -> dict[str, ClusterState]:
    """Each cluster of a site as one view: all its nodes, whichever appliance runs them."""
    merged: dict[str, ClusterState] = {}
    for state in states:
        for cluster in state.clusters:
            seen = merged.get(cluster.name)
            if seen is None:
                merged[cluster.name] = cluster
                continue
            names = {s.name for s in seen.schedules}
            merged[cluster.name] = seen.model_copy(
                update={
                    "nodes": sorted([*seen.nodes, *cluster.nodes], key=lambda n: n.name),
                    "manifests": seen.manifests or cluster.manifests,
                    "schedules": [
                        *seen.schedules,
                        *(s for s in cluster.schedules if s.name not in names),
                    ],
                }
            )
    return merged


def _cluster_change(
    name: str, old: ClusterState | None, new: ClusterState | None
) -> ClusterChange | None:
    if old is not None and new is not None and old == new:
        return None
    kind: Kind = "added" if old is None else "removed" if new is None else "changed"
    old_nodes = {n.name: n for n in (old.nodes if old else [])}
    new_nodes = {n.name: n for n in (new.nodes if new else [])}
    nodes: list[NodeChange] = []
    current = new or old
    assert current is not None
    for node in sorted(set(old_nodes) | set(new_nodes)):
        a, b = old_nodes.get(node), new_nodes.get(node)
        if a is None and b is not None:
            nodes.append(NodeChange(node, b.pool, b.appliance, "added"))
        elif b is None and a is not None:
            nodes.append(NodeChange(node, a.pool, a.appliance, "removed", loses_data=True))
        elif a is not None and b is not None:
            found = node_kind(a, b, current.mode)
            if found is not None:
                before, after = _spec(a), _spec(b)
                fields = tuple(sorted(k for k in after if after[k] != before.get(k)))
                change, lost = found
                nodes.append(NodeChange(node, b.pool, b.appliance, change, fields, lost))
    return ClusterChange(
        name=name,
        kind=kind,
        mode=current.mode,
        nodes=tuple(nodes),
        order=_replacement_order(new, nodes) if new is not None and old is not None else (),
        packs=_pack_changes(old, new),
        schedules=_schedule_changes(old, new),
        manifests=_manifest_changes(old, new),
    )


def _replacement_order(cluster: ClusterState, nodes: list[NodeChange]) -> tuple[str, ...]:
    """The steps restarts and replacements take: control-plane pool first; a node that keeps
    its data stops before it starts again on it, one that loses it goes by its pool's
    strategy."""
    steps: list[str] = []
    pools = sorted(cluster.pools, key=lambda p: not p.controlPlane)
    for pool in pools:
        for change in (n for n in nodes if n.pool == pool.name):
            if change.kind == "restarted":
                steps.append(f"stop {change.node}, start it again with the new spec on its data")
            elif change.kind != "replaced":
                continue
            elif not change.loses_data:
                steps.append(f"remove {change.node}, make it again from its image on its data disk")
            elif pool.updateStrategy == "expand-first":
                steps.append(
                    f"create new {change.node} on a new volume, wait until it runs, "
                    "remove the old one with its volume"
                )
            else:
                steps.append(
                    f"remove {change.node} with its volume, then create it again on a new one"
                )
    return tuple(steps)


def _pack_changes(old: ClusterState | None, new: ClusterState | None) -> tuple[str, ...]:
    a = {p.name: p.version for p in (old.packs if old else [])}
    b = {p.name: p.version for p in (new.packs if new else [])}
    out = []
    for pack in sorted(set(a) | set(b)):
        if a.get(pack) != b.get(pack):
            out.append(f"{pack} {a.get(pack, '(none)')} → {b.get(pack, '(none)')}")
    return tuple(out)


def _schedule_changes(old: ClusterState | None, new: ClusterState | None) -> tuple[str, ...]:
    a = {s.name: s for s in (old.schedules if old else [])}
    b = {s.name: s for s in (new.schedules if new else [])}
    out = []
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        if x is None and y is not None:
            out.append(f"{name}: added ({y.cron} {y.timezone})")
        elif y is None and x is not None:
            out.append(f"{name}: removed")
        elif x is not None and y is not None and x != y:
            detail = f"{x.cron} → {y.cron}" if x.cron != y.cron else "parameters changed"
            out.append(f"{name}: {detail}")
    return tuple(out)


def _manifest_key(m: ManifestFile) -> str:
    return f"{m.pack}/{m.name}"


def _manifest_changes(old: ClusterState | None, new: ClusterState | None) -> tuple[str, ...]:
    a = {_manifest_key(m): m for m in (old.manifests if old else [])}
    b = {_manifest_key(m): m for m in (new.manifests if new else [])}
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        secret = "secret " if _sealed(x) or _sealed(y) else ""
        if x is None:
            out.append(f"{key} ({secret}added)")
        elif y is None:
            out.append(f"{key} ({secret}removed)")
        elif x.content != y.content or x.encryption != y.encryption:
            out.append(f"{key} ({secret}changed)")
    return tuple(out)


def _manifest_diff(
    site: str, cluster: str, old: ClusterState | None, new: ClusterState | None
) -> list[str]:
    a = {_manifest_key(m): m for m in (old.manifests if old else [])}
    b = {_manifest_key(m): m for m in (new.manifests if new else [])}
    lines: list[str] = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x == y:
            continue
        if _sealed(x) or _sealed(y):
            # ciphertext says nothing to a reader: which keys changed, never a value
            before = x.content if _sealed(x) and x is not None else None
            after = y.content if _sealed(y) and y is not None else None
            lines.append(f"secret {secret_change(before, after)}: {site}/{cluster}/{key}\n")
            continue
        lines += difflib.unified_diff(
            _readable(x.content if x else "").splitlines(keepends=True),
            _readable(y.content if y else "").splitlines(keepends=True),
            fromfile=f"a/{site}/{cluster}/{key}" if x else "/dev/null",
            tofile=f"b/{site}/{cluster}/{key}" if y else "/dev/null",
        )
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
    return lines


def _sealed(manifest: ManifestFile | None) -> bool:
    return manifest is not None and manifest.encryption is not None


def _readable(content: str) -> str:
    """A manifest as a person reads its diff: a HelmChart's ``valuesContent`` (YAML held in
    one string, which a dump writes as one escaped line) becomes a block of YAML lines."""
    if "HelmChart" not in content or "valuesContent" not in content:
        return content
    yaml = YAML()
    yaml.width = 4096
    try:
        documents = list(yaml.load_all(content))
    except YAMLError:
        return content
    found = False
    for document in documents:
        if not isinstance(document, dict) or document.get("kind") != "HelmChart":
            continue
        spec = document.get("spec")
        if isinstance(spec, dict):
            values = spec.get("valuesContent")
            if isinstance(values, str) and values.strip():
                spec["valuesContent"] = LiteralScalarString(values)
                found = True
    if not found:
        return content
    out = io.StringIO()
    yaml.dump_all(documents, out)
    return out.getvalue()
