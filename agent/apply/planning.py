"""Planning: a DesiredState, the inventory and what exists become ordered steps per cluster.
Pure, so the same inputs always give the same plan; what the inventory records tells drift
(made, then removed by hand) from a first creation."""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from agent.apply.inventory import ClusterStage, Record
from agent.apply.steps import (
    CreateNode,
    EnsureNetwork,
    RemoveManifests,
    RemoveNetwork,
    RemoveNode,
    RemoveReason,
    RemoveVolume,
    StartNode,
    Step,
    WriteManifests,
)
from agent.contract import ClusterState, DesiredState, Mode, Node, Pool
from agent.drivers import NodeLaunch, Observation, ObservedContainer
from agent.naming import (
    ManifestWrite,
    container_name,
    manifest_files,
    network_name,
    spec_digest,
    volume_name,
)

Action = Literal["converge", "delete", "abort", "unsupported"]


@dataclass(frozen=True)
class ClusterPlan:
    name: str
    action: Action
    steps: tuple[Step, ...] = ()
    # records of things already gone, dropped from the inventory after the pass
    forget: tuple[Record, ...] = ()
    # what the inventory holds once a converge succeeds (adopts what exists unrecorded)
    keep: tuple[Record, ...] = ()
    message: str | None = None


@dataclass(frozen=True)
class Plan:
    clusters: tuple[ClusterPlan, ...]

    def cluster(self, name: str) -> ClusterPlan:
        return next(plan for plan in self.clusters if plan.name == name)


def plan_state(
    state: DesiredState,
    *,
    records: Sequence[Record],
    stages: Mapping[str, ClusterStage],
    observed: Observation,
    default_image: str,
    mode: Mode,
    join_secret: bytes = b"",
    opened: Mapping[str, Mapping[int, str]] | None = None,
) -> Plan:
    """``opened``: the plaintext of the encrypted manifests, by cluster and position."""
    wanted = {c.name: c for c in state.clusters if c.phase == "present"}
    known = set(stages) | {r.cluster for r in records} | observed.clusters()
    removed = sorted(
        (known | {c.name for c in state.clusters}) - set(wanted),
    )
    by_cluster: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_cluster[record.cluster].append(record)

    plans: list[ClusterPlan] = []
    for name in removed:
        aborting = stages.get(name) in (ClusterStage.PROVISIONING, ClusterStage.ABORTING)
        plans.append(_removal(name, "abort" if aborting else "delete", by_cluster[name], observed))
    for cluster in wanted.values():
        if cluster.mode != mode:
            message = f"{cluster.mode} clusters are not served by this agent's {mode} driver"
            plans.append(ClusterPlan(cluster.name, "unsupported", message=message))
            continue
        files = manifest_files(cluster.manifests, (opened or {}).get(cluster.name))
        recorded = by_cluster[cluster.name]
        plans.append(
            _converge(state, cluster, files, recorded, observed, default_image, mode, join_secret)
        )
    return Plan(tuple(plans))


def _converge(
    state: DesiredState,
    cluster: ClusterState,
    files: tuple[ManifestWrite, ...],
    recorded: list[Record],
    observed: Observation,
    default_image: str,
    mode: Mode,
    join_secret: bytes = b"",
) -> ClusterPlan:
    steps: list[Step] = []
    keep: list[Record] = []
    removals: list[RemoveNode] = []
    staying: dict[str, Node] = {}  # container -> node, for containers kept as they are
    had = {(r.kind, r.parent, r.name) for r in recorded}

    # the network
    network = network_name(cluster.name)
    if mode == "containerized":
        keep.append(Record("network", network, cluster.name))
        if network not in observed.networks:
            drift = ("network", "", network) in had
            steps.append(EnsureNetwork(cluster.name, network, drift=drift))

    # the nodes, pool by pool, control plane first
    present: dict[str, list[ObservedContainer]] = defaultdict(list)
    for container in sorted(observed.containers.values(), key=lambda c: c.name):
        if container.cluster == cluster.name:
            present[container.node].append(container)
    for pool in pools_in_order(cluster.pools):
        for node in (n for n in cluster.nodes if n.pool == pool.name):
            launch = _launch(state, cluster, node, files, default_image, join_secret)
            create = CreateNode(cluster.name, launch, "new")
            keep.extend(create.records())
            containers = present.pop(node.name, [])
            current = next((c for c in containers if c.name == launch.container), None)
            old = [_remove(c, "replaced", recorded) for c in containers if c is not current]
            removals.extend(old)
            if current is not None:
                staying[current.name] = node
                if not current.running:
                    drift = ("container", "", current.name) in had
                    steps.append(StartNode(cluster.name, node.name, current.name, drift))
                steps.extend(old)  # an interrupted replacement: finish it
            elif old:
                create = CreateNode(
                    cluster.name, launch, "replace", tuple(r.container for r in old)
                )
                expand = pool.updateStrategy == "expand-first"
                steps.extend([create, *old] if expand else [*old, create])
            else:
                drift = any(r.kind == "container" and r.node == node.name for r in recorded)
                steps.append(CreateNode(cluster.name, launch, "drift" if drift else "new"))
        surplus = _surplus(present, pool.name, recorded)
        removals.extend(surplus)
        steps.extend(surplus)
    leftover = _surplus(present, None, recorded)  # pools the state no longer has
    removals.extend(leftover)
    steps.extend(leftover)

    # the manifests of control-plane nodes that stay
    wanted_files = {f.filename for f in files}
    for name, node in staying.items():
        if node.role != "control-plane":
            continue
        have = observed.manifests.get(name, {})
        mine = {r.name for r in recorded if r.kind == "manifest" and r.parent == name}
        write = tuple(f for f in files if have.get(f.filename) != f.sha256)
        if write:
            changed = tuple(f.filename for f in write if f.filename in mine)
            steps.append(WriteManifests(cluster.name, node.name, name, write, changed))
        stale = tuple(sorted(f for f in mine - wanted_files if f in have))
        if stale:
            steps.append(RemoveManifests(cluster.name, node.name, name, stale))

    # volumes no node uses any more
    used = {r.name for r in keep if r.kind == "volume"} | {r.volume for r in removals}
    for volume in sorted(observed.volumes.values(), key=lambda v: v.name):
        if volume.cluster == cluster.name and volume.name not in used:
            steps.append(RemoveVolume(cluster.name, volume.name))

    kept = {(r.kind, r.parent, r.name) for r in keep}
    forget = tuple(
        r for r in recorded if (r.kind, r.parent, r.name) not in kept and not _exists(r, observed)
    )
    return ClusterPlan(cluster.name, "converge", tuple(steps), forget, tuple(keep))


def _removal(
    name: str, action: Action, recorded: list[Record], observed: Observation
) -> ClusterPlan:
    containers = sorted(
        (c for c in observed.containers.values() if c.cluster == name),
        key=lambda c: (c.role == "control-plane", c.name),
    )
    steps: list[Step] = [_remove(c, "cluster-removed", recorded) for c in containers]
    used = {volume_name(c.name) for c in containers}
    steps.extend(
        RemoveVolume(name, v.name)
        for v in sorted(observed.volumes.values(), key=lambda v: v.name)
        if v.cluster == name and v.name not in used
    )
    steps.extend(
        RemoveNetwork(name, network)
        for network, cluster in sorted(observed.networks.items())
        if cluster == name
    )
    forget = tuple(r for r in recorded if not _exists(r, observed))
    return ClusterPlan(name, action, tuple(steps), forget)


def _surplus(
    present: dict[str, list[ObservedContainer]], pool: str | None, recorded: list[Record]
) -> list[RemoveNode]:
    """Remove the containers of nodes the state no longer lists (scale down); ``present``
    holds only those by now. ``pool`` None: whatever pool."""
    chosen = sorted(
        (c for node in present.values() for c in node if pool is None or c.pool == pool),
        key=lambda c: (c.role == "control-plane", c.name),
    )
    for container in chosen:
        present[container.node].remove(container)
    return [_remove(c, "scale-down", recorded) for c in chosen]


def _remove(
    container: ObservedContainer, reason: RemoveReason, recorded: list[Record]
) -> RemoveNode:
    files = tuple(
        sorted(r.name for r in recorded if r.kind == "manifest" and r.parent == container.name)
    )
    return RemoveNode(
        container.cluster,
        container.node,
        container.pool,
        container.name,
        volume_name(container.name),
        reason,
        files,
    )


def _launch(
    state: DesiredState,
    cluster: ClusterState,
    node: Node,
    files: tuple[ManifestWrite, ...],
    default_image: str,
    join_secret: bytes = b"",
) -> NodeLaunch:
    spec = spec_digest(node, default_image=default_image)
    container = container_name(node.name, spec)
    first = first_server(cluster)
    return NodeLaunch(
        appliance=state.appliance,
        cluster=cluster.name,
        pool=node.pool,
        node=node.name,
        role=node.role,
        container=container,
        volume=volume_name(container),
        network=network_name(cluster.name),
        image=node.image or default_image,
        spec=spec,
        revision=state.revision,
        digest=state.digest,
        user_data=node.userData,
        resources=node.resources,
        placement=node.placement,
        manifests=files if node.role == "control-plane" else (),
        join=None if node.name == first else first,
        token=join_token(join_secret, cluster.name),
        setup=node.setup,
    )


def first_server(cluster: ClusterState) -> str | None:
    """The control-plane node that starts the cluster: the first of the control-plane pool
    (by index, so pos-main-2 comes before pos-main-10); the others join it."""
    servers = [n.name for n in cluster.nodes if n.role == "control-plane"]

    def index(name: str) -> tuple[int, str]:
        tail = name.rsplit("-", 1)[-1]
        return (int(tail) if tail.isdigit() else 0, name)

    return min(servers, key=index) if servers else None


def join_token(secret: bytes, cluster: str) -> str:
    """The cluster's join token: derived from the agent's own secret (kept in its data
    folder, never in the desired state or the repository) and the cluster's name, so it is
    the same on every pass and after restarts."""
    return hmac.new(secret, f"k3s-join:{cluster}".encode(), hashlib.sha256).hexdigest()[:48]


def _exists(record: Record, observed: Observation) -> bool:
    return observed.holds(record.kind, record.name, record.parent)


def pools_in_order(pools: Sequence[Pool]) -> list[Pool]:
    """The control-plane pool first, the others in the state's order."""
    return sorted(pools, key=lambda p: not p.controlPlane)
