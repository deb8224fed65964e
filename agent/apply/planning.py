"""Planning: a DesiredState, the inventory and what exists become ordered steps per cluster.
Pure, so the same inputs always give the same plan; what the inventory records tells drift
(made, then removed by hand) from a first creation."""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from agent.apply.inventory import ClusterStage, Record
from agent.apply.steps import (
    CreateNode,
    CreateReason,
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
from agent.contract import ClusterJoin, ClusterState, DesiredState, Mode, Node, Pool
from agent.drivers import Join, NodeLaunch, Observation, ObservedContainer
from agent.naming import (
    ManifestWrite,
    container_name,
    data_volume,
    manifest_files,
    network_name,
    root_volume,
    spec_digest,
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
    # nodes that cannot be created yet, and why (their join address is not known)
    waiting: tuple[str, ...] = ()


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
    node_ip: str | None = None,
) -> Plan:
    """``opened``: the plaintext of the encrypted manifests, by cluster and position;
    ``join_secret``: this agent's own secret, whose tokens serve clusters the reconciler
    sent no join token for (an offline bundle); ``node_ip``: this appliance's address, which
    nodes of a cluster spanning appliances are reached at."""
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
        joining = _Joining(
            cluster,
            state.joining(cluster.name),
            join_token(join_secret, cluster.name),
            node_ip,
        )
        recorded = by_cluster[cluster.name]
        plans.append(_converge(state, cluster, files, recorded, observed, default_image, joining))
    return Plan(tuple(plans))


@dataclass(frozen=True)
class _Joining:
    """How the nodes of one cluster join it, from what the reconciler served (``served``)
    or, without it, this agent's own token."""

    cluster: ClusterState
    served: ClusterJoin | None
    own_token: str
    node_ip: str | None

    def join(self, node: Node) -> Join | str:
        """The node's join, or why it must wait for one."""
        cluster, served = self.cluster, self.served
        spans = cluster.spans_appliances
        host = spans and cluster.mode == "containerized"

        def made(server: str | None = None, init: bool = False) -> Join:
            token = served.token if served is not None else self.own_token
            return Join(token, server, init, host, self.node_ip if host else None)

        first = first_server(cluster)
        if node.role == "control-plane" and node.name == first:
            if served is None or served.init:
                return made(init=True)
            if spans or cluster.mode == "virtualized":
                if served.server:
                    return made(server=served.server)
                return f"node {node.name} waits for the address of another server to join"
            # a replaced first server joins a server beside it rather than start anew
            other = next((n for n in _servers(cluster) if n != first), None)
            return made(server=_by_name(other)) if other else made(init=True)
        if cluster.mode == "virtualized":
            server = served.server if served is not None else _by_vip(cluster.vip)
        elif spans:
            server = served.server if served is not None else None
        else:
            server = _by_name(first) if first else None
        if server is None:
            where = next((s.appliance for s in cluster.servers if s.node == first), "")
            at = f" on {where}" if where else ""
            return (
                f"node {node.name} waits for the address of the first server {first}{at} "
                "(its appliance has not registered with the reconciler yet)"
            )
        return made(server=server)


def _by_name(node: str) -> str:
    # on a cluster's own network a node is reached by its name (its network alias)
    return f"https://{node}:6443"


def _by_vip(vip: str | None) -> str | None:
    return f"https://{vip}:6443" if vip else None


def _converge(
    state: DesiredState,
    cluster: ClusterState,
    files: tuple[ManifestWrite, ...],
    recorded: list[Record],
    observed: Observation,
    default_image: str,
    joining: _Joining,
) -> ClusterPlan:
    steps: list[Step] = []
    keep: list[Record] = []
    waiting: list[str] = []
    removals: list[RemoveNode] = []
    staying: dict[str, Node] = {}  # container -> node, for containers kept as they are
    had = {(r.kind, r.parent, r.name) for r in recorded}
    host_network = cluster.spans_appliances and cluster.mode == "containerized"

    # the network (a cluster spanning appliances uses each appliance's own)
    network = network_name(cluster.name)
    if cluster.mode == "containerized" and not host_network:
        keep.append(Record("network", network, cluster.name))
        if network not in observed.networks:
            drift = ("network", "", network) in had
            steps.append(EnsureNetwork(cluster.name, network, drift=drift))

    # what every node of the state runs on: volumes outlive the containers that used them
    launches = {
        node.name: _launch(state, cluster, node, files, default_image) for node in cluster.nodes
    }
    wanted_volumes = {v for launch in launches.values() for v in _volumes(launch)}

    # the nodes, pool by pool, control plane first
    present: dict[str, list[ObservedContainer]] = defaultdict(list)
    for container in sorted(observed.containers.values(), key=lambda c: c.name):
        if container.cluster == cluster.name:
            present[container.node].append(container)
    for pool in pools_in_order(cluster.pools):
        for node in (n for n in cluster.nodes if n.pool == pool.name):
            launch = launches[node.name]
            containers = present.pop(node.name, [])
            current = next((c for c in containers if c.name == launch.container), None)
            others = [c for c in containers if c is not current]
            if current is not None:
                keep.extend(CreateNode(cluster.name, launch, "new").records())
                old = [_remove(c, "replaced", recorded, keeping=wanted_volumes) for c in others]
                removals.extend(old)
                staying[current.name] = node
                if not current.running:
                    drift = ("container", "", current.name) in had
                    steps.append(StartNode(cluster.name, node.name, current.name, drift))
                steps.extend(old)  # an interrupted replacement: finish it
                continue
            joined = joining.join(node)
            if isinstance(joined, str):
                waiting.append(joined)  # what runs now keeps running meanwhile
                continue
            launch = replace(launch, join=joined)
            keep.extend(CreateNode(cluster.name, launch, "new").records())
            old = [_remove(c, "replaced", recorded, keeping=wanted_volumes) for c in others]
            removals.extend(old)
            if old:
                mine = set(_volumes(launch))
                shared = {v for c in others for v in c.volumes} & mine
                reason: CreateReason = "restart" if shared and shared == mine else "replace"
                create = CreateNode(cluster.name, launch, reason, tuple(r.container for r in old))
                # a node started on the volumes its old container used waits for it to stop
                expand = pool.updateStrategy == "expand-first" and not shared
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
        mine_files = {r.name for r in recorded if r.kind == "manifest" and r.parent == name}
        write = tuple(f for f in files if have.get(f.filename) != f.sha256)
        if write:
            changed = tuple(f.filename for f in write if f.filename in mine_files)
            steps.append(WriteManifests(cluster.name, node.name, name, write, changed))
        stale = tuple(sorted(f for f in mine_files - wanted_files if f in have))
        if stale:
            steps.append(RemoveManifests(cluster.name, node.name, name, stale))

    # volumes no node uses any more (those of containers kept while they wait stay, and
    # those made for a container the state wants, as a domain's seed made again this pass)
    removed_containers = {r.container for r in removals}
    wanted_containers = {launch.container for launch in launches.values()}
    used = wanted_volumes | {v for r in removals for v in r.volumes}
    used |= {v.name for v in observed.volumes.values() if v.container in wanted_containers}
    used |= {
        v
        for c in observed.containers.values()
        if c.cluster == cluster.name and c.name not in removed_containers
        for v in c.volumes
    }
    for volume in sorted(observed.volumes.values(), key=lambda v: v.name):
        if volume.cluster == cluster.name and volume.name not in used:
            steps.append(RemoveVolume(cluster.name, volume.name))

    kept = {(r.kind, r.parent, r.name) for r in keep}
    forget = tuple(
        r for r in recorded if (r.kind, r.parent, r.name) not in kept and not _exists(r, observed)
    )
    return ClusterPlan(
        cluster.name, "converge", tuple(steps), forget, tuple(keep), waiting=tuple(waiting)
    )


def _volumes(launch: NodeLaunch) -> tuple[str, ...]:
    return tuple(v for v in (launch.volume, launch.root) if v)


def _removal(
    name: str, action: Action, recorded: list[Record], observed: Observation
) -> ClusterPlan:
    containers = sorted(
        (c for c in observed.containers.values() if c.cluster == name),
        key=lambda c: (c.role == "control-plane", c.name),
    )
    steps: list[Step] = [_remove(c, "cluster-removed", recorded) for c in containers]
    used = {v for c in containers for v in c.volumes}
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
    container: ObservedContainer,
    reason: RemoveReason,
    recorded: list[Record],
    *,
    keeping: set[str] | frozenset[str] = frozenset(),
) -> RemoveNode:
    """Remove ``container`` with the volumes it used, but those in ``keeping``."""
    files = tuple(
        sorted(r.name for r in recorded if r.kind == "manifest" and r.parent == container.name)
    )
    return RemoveNode(
        container.cluster,
        container.node,
        container.pool,
        container.name,
        tuple(v for v in container.volumes if v not in keeping),
        reason,
        files,
    )


def _launch(
    state: DesiredState,
    cluster: ClusterState,
    node: Node,
    files: tuple[ManifestWrite, ...],
    default_image: str,
) -> NodeLaunch:
    """The node as it is to run, without its join (only a creation needs one)."""
    spec = spec_digest(node, default_image=default_image)
    container = container_name(node.name, spec)
    virtual = cluster.mode == "virtualized"
    has_data = not virtual or bool(node.resources and node.resources.dataDiskGiB)
    return NodeLaunch(
        appliance=state.appliance,
        cluster=cluster.name,
        pool=node.pool,
        node=node.name,
        role=node.role,
        container=container,
        volume=data_volume(node) if has_data else "",
        network=network_name(cluster.name),
        image=node.image or default_image,
        spec=spec,
        revision=state.revision,
        digest=state.digest,
        user_data=node.userData,
        resources=node.resources,
        placement=node.placement,
        manifests=files if node.role == "control-plane" else (),
        setup=node.setup,
        root=root_volume(node, default_image=default_image) if virtual else None,
    )


def first_server(cluster: ClusterState) -> str | None:
    """The control-plane node that starts the cluster: for a cluster spanning appliances the
    first the reconciler names (it may run elsewhere), else the first of the control-plane
    pool (by index, so pos-main-2 comes before pos-main-10); the others join it."""
    if cluster.servers:
        return cluster.servers[0].node
    servers = _servers(cluster)
    return servers[0] if servers else None


def _servers(cluster: ClusterState) -> list[str]:
    """This appliance's control-plane nodes in the order the cluster forms."""

    def index(name: str) -> tuple[int, str]:
        tail = name.rsplit("-", 1)[-1]
        return (int(tail) if tail.isdigit() else 0, name)

    return sorted((n.name for n in cluster.nodes if n.role == "control-plane"), key=index)


def join_token(secret: bytes, cluster: str) -> str:
    """A token of this agent's own for a cluster the reconciler sent none for (an offline
    bundle): derived from the agent's secret (kept in its data folder, never in the desired
    state or the repository) and the cluster's name, so it is the same on every pass."""
    return hmac.new(secret, f"k3s-join:{cluster}".encode(), hashlib.sha256).hexdigest()[:48]


def _exists(record: Record, observed: Observation) -> bool:
    return observed.holds(record.kind, record.name, record.parent)


def pools_in_order(pools: Sequence[Pool]) -> list[Pool]:
    """The control-plane pool first, the others in the state's order."""
    return sorted(pools, key=lambda p: not p.controlPlane)
