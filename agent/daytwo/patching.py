"""OS patching: a cluster's nodes upgraded one at a time, control plane first, rebooted when
the upgrade asks for it and the policy allows. A failing node stops the run; a run held to the
maintenance window leaves the rest for its next opening. A control-plane node of a cluster
that spans appliances reboots only while this appliance holds the cluster's reboot lease
(:class:`RebootGate`, granted by the reconciler to one member appliance at a time)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from agent.clocks import Clock
from agent.contract import ClusterState
from agent.daytwo import DayTwoError
from agent.daytwo.history import History
from agent.daytwo.records import NodePatch, PatchResult, RunState, Trigger
from agent.drivers import DriverError
from agent.drivers.nodes import NodeRef, Nodes
from agent.errors import one_line
from agent.windows import is_open, when_open

UPGRADE = (
    "if command -v apk >/dev/null 2>&1; then apk upgrade --no-cache; "
    "elif command -v apt-get >/dev/null 2>&1; then apt-get -q update && "
    "DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confold "
    "dist-upgrade; "
    "else echo 'no package manager (apk, apt-get) found' >&2; exit 3; fi"
)
VERSION = '. /etc/os-release && echo "${VERSION_ID:-unknown}"'


class UpgradeFailed(DayTwoError): ...


class LeaseRefused(DayTwoError):
    """Another appliance of the cluster held the reboot lease for as long as we waited."""


class RebootGate(Protocol):
    """The reconciler's reboot lease of a cluster: one member appliance at a time."""

    def acquire(self, cluster: str, *, seconds: float) -> str | None:
        """None when granted (or renewed); otherwise who holds it, as one line."""
        ...

    def release(self, cluster: str) -> None: ...


@dataclass(frozen=True)
class PatchSettings:
    command: tuple[str, ...] = ("sh", "-c", UPGRADE)
    # the last line it prints is the node's version
    version_command: tuple[str, ...] = ("sh", "-c", VERSION)
    reboot_marker: str = "/var/run/reboot-required"
    timeout: float = 1800  # seconds the upgrade of one node may take
    reboot_timeout: float = 300  # seconds a rebooted node has to run again
    lease_wait: float = 1800  # seconds to wait for another appliance's reboots to end
    lease_poll: float = 2.0  # seconds between asks for the lease


def patch_cluster(
    cluster: ClusterState,
    *,
    nodes: Nodes,
    history: History,
    clock: Clock,
    settings: PatchSettings,
    trigger: Trigger,
    reboot_if_required: bool,
    within_window: bool,
    resume_since: datetime | None = None,
    gate: RebootGate | None = None,
) -> PatchResult:
    """Patch the cluster's nodes; ``resume_since`` (a postponed run) skips the nodes patched
    since the run was first due; ``gate`` holds control-plane reboots of a cluster spanning
    appliances to one appliance at a time."""
    started = clock.now()
    try:
        refs = nodes.cluster_nodes(cluster)
    except DriverError as e:
        return _finish(history, clock, cluster, trigger, started, (), error=one_line(e), until=None)
    done: list[NodePatch] = []
    until: datetime | None = None
    for ref in refs:
        if resume_since and history.patched_since(cluster.name, ref.node, resume_since):
            continue
        now = clock.now()
        windows, zone = cluster.maintenanceWindows, cluster.timezone
        if within_window and not is_open(windows, zone, now):
            until = when_open(windows, zone, now)
            break
        patched = _patch_node(
            cluster.name,
            ref,
            nodes=nodes,
            clock=clock,
            settings=settings,
            reboot_if_required=reboot_if_required,
            gate=gate if cluster.spans_appliances and ref.role == "control-plane" else None,
        )
        done.append(patched)
        if patched.state is RunState.FAILED:
            break
    return _finish(history, clock, cluster, trigger, started, tuple(done), error=None, until=until)


def _patch_node(
    cluster: str,
    ref: NodeRef,
    *,
    nodes: Nodes,
    clock: Clock,
    settings: PatchSettings,
    reboot_if_required: bool,
    gate: RebootGate | None,
) -> NodePatch:
    previous = _version(nodes, ref, settings)
    patched = NodePatch(
        cluster=cluster,
        node=ref.node,
        pool=ref.pool,
        state=RunState.FAILED,
        at=clock.now(),
        previous=previous,
    )
    try:
        upgrade = nodes.run(ref, settings.command, timeout=settings.timeout)
        if upgrade.code != 0:
            lines = upgrade.output.strip().splitlines() or ["no output"]
            raise UpgradeFailed(f"upgrade exited {upgrade.code}: {lines[-1][:200]}")
        version = _version(nodes, ref, settings)
        required = nodes.exists(ref, settings.reboot_marker)
        rebooted = False
        if required and reboot_if_required:
            if gate is not None:
                _wait_for_lease(gate, cluster, clock=clock, settings=settings)
            try:
                nodes.restart(ref, timeout=settings.reboot_timeout)
            finally:
                if gate is not None:
                    gate.release(cluster)
            rebooted = True
            required = nodes.exists(ref, settings.reboot_marker)
    except (DriverError, UpgradeFailed, LeaseRefused) as e:
        return replace(patched, at=clock.now(), error=one_line(e))
    return replace(
        patched,
        state=RunState.DONE,
        at=clock.now(),
        version=version,
        reboot_required=required,
        rebooted=rebooted,
    )


def _wait_for_lease(
    gate: RebootGate, cluster: str, *, clock: Clock, settings: PatchSettings
) -> None:
    """Hold until this appliance holds the cluster's reboot lease, long enough to reboot."""
    deadline = clock.monotonic() + settings.lease_wait
    while True:
        holder = gate.acquire(cluster, seconds=settings.reboot_timeout + 60)
        if holder is None:
            return
        if clock.monotonic() >= deadline:
            raise LeaseRefused(f"no reboot lease for cluster {cluster}: {holder}")
        clock.sleep(settings.lease_poll)


def _version(nodes: Nodes, ref: NodeRef, settings: PatchSettings) -> str | None:
    try:
        found = nodes.run(ref, settings.version_command, timeout=60)
    except DriverError:
        return None
    lines = found.output.strip().splitlines()
    return lines[-1].strip()[:100] if found.code == 0 and lines else None


def _finish(
    history: History,
    clock: Clock,
    cluster: ClusterState,
    trigger: Trigger,
    started: datetime,
    done: tuple[NodePatch, ...],
    *,
    error: str | None,
    until: datetime | None,
) -> PatchResult:
    failed = error is not None or any(n.state is RunState.FAILED for n in done)
    state = RunState.FAILED if failed else RunState.POSTPONED if until else RunState.DONE
    result = PatchResult(
        cluster=cluster.name,
        trigger=trigger,
        state=state,
        started_at=started,
        finished_at=clock.now(),
        nodes=done,
        postponed_until=until,
        error=error,
    )
    history.record_patch(result)
    return result
