"""One apply pass from a DesiredState to what runs on this appliance (:func:`apply_state`):
admit, open its secrets, keep, observe, recover, plan, execute cluster by cluster, record.
Every step is journaled before it runs, so a pass cut short is finished or undone by the next."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.apply.admission import InstalledNetwork, admit
from agent.apply.inventory import ClusterStage, Inventory
from agent.apply.journal import StepStatus
from agent.apply.opening import open_manifests
from agent.apply.passes import (
    ApplyResult,
    ClusterResult,
    Event,
    EventKind,
    Phase,
    Progress,
    Task,
    TaskState,
)
from agent.apply.planning import ClusterPlan, plan_state
from agent.apply.recovery import recover
from agent.apply.steps import (
    CreateNode,
    EnsureNetwork,
    RemoveManifests,
    RemoveNetwork,
    RemoveNode,
    RemoveVolume,
    StartNode,
    Step,
    WriteManifests,
)
from agent.clocks import Clock
from agent.contract import DesiredState
from agent.drivers import (
    Driver,
    DriverError,
    NodeDidNotStart,
    NodeRemoval,
    PlacementChange,
    PlacementCheck,
    Reason,
)

ProgressCallback = Callable[[Progress], None]
POLL_SECONDS = 0.2


def apply_state(
    state: DesiredState,
    *,
    driver: Driver,
    inventory: Inventory,
    clock: Clock,
    on_progress: ProgressCallback | None = None,
    start_timeout: float = 60.0,
    age_key: Path | None = None,
    network: InstalledNetwork | None = None,
    node_ip: str | None = None,
) -> ApplyResult:
    """Apply ``state``; raises :class:`agent.apply.admission.StateRefused` before touching anything
    when the state may not be applied here. ``age_key`` is the appliance's age identity file,
    which opens the state's encrypted manifests; ``network`` the CIDRs the appliance was
    installed for, which its clusters must use; ``node_ip`` the appliance's address, at which
    the nodes of a cluster spanning appliances are reached."""
    # Admit: a refused state changes nothing, not even the saved state
    admit(state, appliance=inventory.appliance(), network=network)

    # Open: every encrypted manifest opens here, or the state is refused as a whole
    opened = open_manifests(state, age_key=age_key)
    started = clock.now()

    # Keep: the last good state, to run from while the reconciler is unreachable
    inventory.keep_state(state)
    inventory.mark_attempted(state, at=started)

    # Observe, and settle what an interrupted pass left open
    try:
        observed = driver.observe(appliance=state.appliance)
        recovered = recover(inventory=inventory, driver=driver, observed=observed, clock=clock)
        if recovered:
            observed = driver.observe(appliance=state.appliance)
    except DriverError as e:
        failed = tuple(
            ClusterResult(
                c.name, Phase.ERROR, reason=e.reason, message=str(e), retryable=e.temporary
            )
            for c in state.clusters
        )
        return ApplyResult(
            state.appliance, state.revision, state.digest, started, clock.now(), failed
        )

    # Plan against the inventory and what exists
    plan = plan_state(
        state,
        records=inventory.records(),
        stages=inventory.cluster_stages(),
        observed=observed,
        default_image=driver.default_image,
        mode=driver.mode,
        join_secret=inventory.join_secret(),
        opened=opened,
        node_ip=node_ip,
    )

    # Execute, cluster by cluster: one failing cluster never stops the others
    runner = _Runner(
        appliance=state.appliance,
        digest=state.digest,
        driver=driver,
        inventory=inventory,
        clock=clock,
        on_progress=on_progress,
        start_timeout=start_timeout,
    )
    results = tuple(runner.run(cluster) for cluster in plan.clusters)

    # Record: the digest counts as applied only when every cluster got there
    finished = clock.now()
    result = ApplyResult(
        state.appliance, state.revision, state.digest, started, finished, results, recovered
    )
    if result.ok:
        inventory.mark_applied(state, at=finished)
    inventory.trim_journal()
    return result


@dataclass
class _Runner:
    appliance: str
    digest: str
    driver: Driver
    inventory: Inventory
    clock: Clock
    on_progress: ProgressCallback | None
    start_timeout: float

    def run(self, plan: ClusterPlan) -> ClusterResult:
        if plan.action == "unsupported":
            return ClusterResult(
                plan.name, Phase.ERROR, reason=Reason.NO_DRIVER, message=plan.message
            )
        removing = plan.action in ("delete", "abort")
        phase = Phase.DELETING if removing else Phase.PROVISIONING
        refused = None if removing else self._check_placement(plan)
        if refused is not None:
            return refused
        if plan.steps:
            stage = self.inventory.cluster_stages().get(plan.name)
            if plan.action == "abort":
                self._stage(plan.name, ClusterStage.ABORTING)
            elif removing:
                self._stage(plan.name, ClusterStage.DELETING)
            elif stage != ClusterStage.RUNNING:
                self._stage(plan.name, ClusterStage.PROVISIONING)

        tasks: list[Task] = []
        events: list[Event] = []
        failure: DriverError | None = None
        total = len(plan.steps)
        for index, step in enumerate(plan.steps, start=1):
            if failure is not None:
                tasks.append(Task(plan.name, index, total, step.title, TaskState.SKIPPED))
                continue
            try:
                events.extend(self._step(step, index, total, phase))
                tasks.append(Task(plan.name, index, total, step.title, TaskState.DONE))
            except DriverError as e:
                failure = e
                tasks.append(Task(plan.name, index, total, step.title, TaskState.FAILED, str(e)))
        self.inventory.forget(*plan.forget)

        if failure is None and plan.waiting:
            # what could be done is done; the rest waits for the reconciler to know more
            self.inventory.record(*plan.keep)
            return ClusterResult(
                plan.name,
                Phase.PROVISIONING,
                tuple(tasks),
                tuple(events),
                message="; ".join(plan.waiting)[:2000],
                retryable=True,
            )
        if failure is not None:
            return ClusterResult(
                plan.name,
                Phase.ERROR,
                tuple(tasks),
                tuple(events),
                reason=failure.reason,
                message=str(failure),
                retryable=failure.temporary,
            )
        if removing:
            known = plan.name in self.inventory.cluster_stages() or bool(plan.steps)
            self.inventory.drop_cluster(plan.name)
            done = Phase.ABORTED if plan.action == "abort" else Phase.DELETED
            if known:
                kind = EventKind.ABORTED if done is Phase.ABORTED else EventKind.DELETED
                message = f"cluster {plan.name} {kind.value}: nodes, volumes and network removed"
                events.append(Event(self.clock.now(), plan.name, kind, plan.name, message))
            return ClusterResult(plan.name, done, tuple(tasks), tuple(events))
        self.inventory.record(*plan.keep)
        self._stage(plan.name, ClusterStage.RUNNING)
        return ClusterResult(plan.name, Phase.RUNNING, tuple(tasks), tuple(events))

    def _check_placement(self, plan: ClusterPlan) -> ClusterResult | None:
        """Before a cluster's first step: do its new nodes fit? None when they do (or the
        driver cannot tell); otherwise the Error result, with nothing created."""
        if not isinstance(self.driver, PlacementCheck):
            return None
        if not any(isinstance(step, CreateNode) for step in plan.steps):
            return None
        changes: list[PlacementChange] = []
        for step in plan.steps:
            if isinstance(step, CreateNode):
                changes.append(step.launch)
            elif isinstance(step, RemoveNode):
                changes.append(NodeRemoval(step.container))
        try:
            self.driver.check_placement(changes)
        except DriverError as e:
            total = len(plan.steps)
            tasks = tuple(
                Task(plan.name, index, total, step.title, TaskState.SKIPPED)
                for index, step in enumerate(plan.steps, start=1)
            )
            return ClusterResult(
                plan.name,
                Phase.ERROR,
                tasks,
                reason=e.reason,
                message=str(e),
                retryable=e.temporary,
            )
        return None

    def _step(self, step: Step, index: int, total: int, phase: Phase) -> list[Event]:
        def report(stage: str) -> None:
            if self.on_progress is not None:
                self.on_progress(Progress(step.cluster, phase, step.title, index, total, stage))

        records = step.records()
        entry = self.inventory.begin_step(
            digest=self.digest,
            cluster=step.cluster,
            action=step.action,
            title=step.title,
            resources=records,
            at=self.clock.now(),
        )
        report("intent")
        try:
            events = self._execute(step, report)
        except DriverError as e:
            if isinstance(step, CreateNode):
                self._undo_create(step)
            self.inventory.settle_step(entry, StepStatus.FAILED, at=self.clock.now(), error=str(e))
            report("failed")
            raise
        if step.removes:
            self.inventory.settle_step(entry, StepStatus.DONE, at=self.clock.now(), forget=records)
        else:
            self.inventory.settle_step(entry, StepStatus.DONE, at=self.clock.now(), record=records)
        report("done")
        return events

    def _execute(self, step: Step, report: Callable[[str], None]) -> list[Event]:
        driver = self.driver
        match step:
            case EnsureNetwork():
                driver.ensure_network(
                    name=step.network, cluster=step.cluster, appliance=self.appliance
                )
            case CreateNode():
                driver.create_node(step.launch)
                report("created")
                driver.start_node(step.launch.container)
                report("started")
                self._wait_running(step.launch.container)
            case StartNode():
                driver.start_node(step.container)
                self._wait_running(step.container)
            case RemoveNode():
                driver.remove_node(container=step.container, volumes=step.volumes)
            case WriteManifests():
                driver.write_manifests(step.container, step.files)
            case RemoveManifests():
                driver.remove_manifests(step.container, step.filenames)
            case RemoveVolume():
                driver.remove_volume(step.volume)
            case RemoveNetwork():
                driver.remove_network(step.network)
        told = _told(step)
        return [] if told is None else [Event(self.clock.now(), step.cluster, *told)]

    def _wait_running(self, container: str) -> None:
        deadline = self.clock.monotonic() + self.start_timeout
        while True:
            state = self.driver.node_state(container)
            if state == "running":
                return
            if state is None or self.clock.monotonic() >= deadline:
                raise NodeDidNotStart(
                    f"node container {container} is {state or 'gone'}, not running"
                )
            self.clock.sleep(POLL_SECONDS)

    def _undo_create(self, step: CreateNode) -> None:
        """A node that failed half way is removed, so the next pass starts it clean; its
        volumes stay (a node restarted on them keeps its data; others are swept later)."""
        try:
            self.driver.remove_node(container=step.launch.container)
        except DriverError:
            pass  # the journal says failed; the next observation finds what is left

    def _stage(self, cluster: str, stage: ClusterStage) -> None:
        self.inventory.set_cluster_stage(cluster, stage, at=self.clock.now())


def _told(step: Step) -> tuple[EventKind, str, str] | None:
    """What a done step tells the operator, if anything: (kind, subject, message)."""
    match step:
        case EnsureNetwork(drift=True):
            return (
                EventKind.DRIFT,
                step.network,
                f"network {step.network} was removed; created again",
            )
        case CreateNode(reason="drift"):
            launch = step.launch
            message = f"its container was removed; created again as {launch.container}"
            return EventKind.DRIFT, launch.node, f"node {launch.node}: {message}"
        case CreateNode(reason="replace"):
            launch = step.launch
            message = f"spec changed; {launch.container} replaces {', '.join(step.replaces)}"
            return EventKind.REPLACED, launch.node, f"node {launch.node}: {message}"
        case CreateNode(reason="restart"):
            launch = step.launch
            message = (
                f"spec changed; restarted as {launch.container} on its data "
                f"(was {', '.join(step.replaces)})"
            )
            return EventKind.RESTARTED, launch.node, f"node {launch.node}: {message}"
        case CreateNode():
            launch = step.launch
            return (
                EventKind.CREATED,
                launch.node,
                f"node {launch.node} created as {launch.container}",
            )
        case StartNode(drift=True):
            message = f"{step.container} was stopped; started again"
            return EventKind.DRIFT, step.node, f"node {step.node}: {message}"
        case RemoveNode():
            message = f"{step.container} removed ({step.reason})"
            return EventKind.REMOVED, step.node, f"node {step.node}: {message}"
        case WriteManifests(drift=drift) if drift:
            message = f"manifests changed by hand restored: {', '.join(drift)}"
            return EventKind.DRIFT, step.node, f"node {step.node}: {message}"
        case RemoveManifests():
            message = f"stale manifests removed: {', '.join(step.filenames)}"
            return EventKind.REMOVED, step.node, f"node {step.node}: {message}"
    return None
