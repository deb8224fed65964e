"""Day-2 operations of one appliance: the runs its schedules ask for, and the same on demand
(``edgefleet-agent run-now`` and ``restore``)::

    OperationError (agent.daytwo.DayTwoError)
    ├── ClusterUnknown     the cluster is not in the appliance's desired state
    └── PolicyMissing      the cluster declares no policy of that kind (backup location)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeVar

from agent.clocks import Clock
from agent.contract import (
    SCAN_TOOLS,
    BackupParameters,
    BackupSchedule,
    ClusterState,
    DesiredState,
    PatchSchedule,
    ScheduleBase,
)
from agent.daytwo import DayTwoError
from agent.daytwo.backups.creating import BackupSettings, backup_cluster
from agent.daytwo.backups.restoring import restore
from agent.daytwo.history import History
from agent.daytwo.patching import PatchSettings, RebootGate, patch_cluster
from agent.daytwo.records import (
    BackupResult,
    DayTwoStatus,
    PatchResult,
    RestoreResult,
    ScanResult,
    Trigger,
)
from agent.daytwo.scans.scanning import ScanSettings, run_scan
from agent.daytwo.schedules.scheduler import Occurrence, Postponed
from agent.drivers.datavolumes import Volumes
from agent.drivers.nodes import Host
from agent.windows import is_open, when_open

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
Kind = Literal["patch", "scan", "backup"]
Result = PatchResult | ScanResult | BackupResult
S = TypeVar("S", bound=ScheduleBase)

log = logging.getLogger(__name__)


class OperationError(DayTwoError): ...


class ClusterUnknown(OperationError): ...


class PolicyMissing(OperationError): ...


@dataclass(frozen=True)
class DayTwoSettings:
    patch: PatchSettings = field(default_factory=PatchSettings)
    scans: ScanSettings = field(default_factory=ScanSettings)
    backups: BackupSettings = field(default_factory=BackupSettings)


class Operations:
    def __init__(
        self,
        *,
        data_dir: Path,
        host: Host,
        volumes: Volumes,
        clock: Clock,
        environ: Mapping[str, str],
        settings: DayTwoSettings | None = None,
        current_state: Callable[[], DesiredState | None] = lambda: None,
        gate: RebootGate | None = None,
    ) -> None:
        self.history = History(data_dir=data_dir)
        self._work_dir = data_dir / "daytwo"
        self._host = host
        self._volumes = volumes
        self._clock = clock
        self._environ = environ
        self._settings = settings or DayTwoSettings()
        self._current_state = current_state
        self._gate = gate  # the reconciler's reboot lease, for clusters spanning appliances

    # -- on schedule -----------------------------------------------------------------------

    def scheduled(self, occurrence: Occurrence) -> Postponed | None:
        """Run what a schedule asks for now; the scheduler's runner."""
        state = self._current_state()
        cluster = None if state is None else _cluster(state, occurrence.cluster, strict=False)
        if state is None or cluster is None:
            log.info("%s: the cluster is no longer desired; nothing to run", occurrence.job)
            return None
        schedule = occurrence.schedule
        if schedule.kind == "patch":
            now = self._clock.now()
            windows, zone = cluster.maintenanceWindows, cluster.timezone
            if not is_open(windows, zone, now):
                return Postponed(when_open(windows, zone, now), "the maintenance window is closed")
            result = self._patch(
                cluster,
                schedule,
                Trigger.SCHEDULE,
                within_window=True,
                resume_since=occurrence.since,
            )
            if result.postponed_until is not None:
                return Postponed(result.postponed_until, "the maintenance window closed")
        elif schedule.kind == "scan":
            self._scan(cluster, schedule.parameters.scan, Trigger.SCHEDULE)
        else:
            self._backup(state, cluster, schedule.parameters, Trigger.SCHEDULE, due=occurrence.due)
        return None

    def on_boot(
        self, state: DesiredState, *, boot_id: str | None = None
    ) -> tuple[PatchResult, ...]:
        """Patch the clusters whose policy says ``onBoot``, once per boot of the appliance."""
        if not self.history.new_boot(boot_id or read_boot_id()):
            return ()
        results = []
        for cluster in state.clusters:
            schedule = _policy(cluster, PatchSchedule)
            if cluster.phase == "present" and schedule and schedule.parameters.onBoot:
                results.append(self._patch(cluster, schedule, Trigger.BOOT, within_window=False))
        return tuple(results)

    # -- on demand -------------------------------------------------------------------------

    def run_now(
        self, kind: Kind, *, state: DesiredState, cluster: str, scan: str | None = None
    ) -> tuple[Result, ...]:
        """Run a patch, the cluster's scans (or the one named) or a backup now."""
        found = _cluster(state, cluster, strict=True)
        assert found is not None
        if kind == "patch":
            policy = _policy(found, PatchSchedule)
            return (self._patch(found, policy, Trigger.ON_DEMAND, within_window=False),)
        if kind == "scan":
            declared: list[str] = [s.parameters.scan for s in found.schedules if s.kind == "scan"]
            types = [scan] if scan else declared or [*SCAN_TOOLS]
            return tuple(self._scan(found, name, Trigger.ON_DEMAND) for name in types)
        backup = _policy(found, BackupSchedule)
        if backup is None:
            raise PolicyMissing(f"cluster {cluster} has no backup policy (no location to use)")
        return (self._backup(state, found, backup.parameters, Trigger.ON_DEMAND),)

    def restore(
        self, backup: str, *, state: DesiredState, cluster: str | None = None
    ) -> RestoreResult:
        """Verify ``backup`` and restore it; raises
        :class:`~agent.daytwo.backups.restoring.RestoreError`."""
        return restore(
            backup,
            state=state,
            cluster=cluster,
            volumes=self._volumes,
            history=self.history,
            clock=self._clock,
            environ=self._environ,
            work_dir=self._work_dir,
        )

    def status(self, state: DesiredState) -> tuple[DayTwoStatus, ...]:
        return tuple(self.history.status(c.name) for c in state.clusters if c.phase == "present")

    # -- the runs --------------------------------------------------------------------------

    def _patch(
        self,
        cluster: ClusterState,
        policy: PatchSchedule | None,
        trigger: Trigger,
        *,
        within_window: bool,
        resume_since: datetime | None = None,
    ) -> PatchResult:
        reboot = policy is not None and policy.parameters.rebootIfRequired
        return patch_cluster(
            cluster,
            nodes=self._host,
            history=self.history,
            clock=self._clock,
            settings=self._settings.patch,
            trigger=trigger,
            reboot_if_required=reboot,
            within_window=within_window,
            resume_since=resume_since,
            gate=self._gate,
        )

    def _scan(self, cluster: ClusterState, scan: str, trigger: Trigger) -> ScanResult:
        return run_scan(
            cluster,
            scan,
            host=self._host,
            history=self.history,
            clock=self._clock,
            settings=self._settings.scans,
            trigger=trigger,
        )

    def _backup(
        self,
        state: DesiredState,
        cluster: ClusterState,
        parameters: BackupParameters,
        trigger: Trigger,
        *,
        due: datetime | None = None,
    ) -> BackupResult:
        return backup_cluster(
            state,
            cluster,
            parameters,
            volumes=self._volumes,
            history=self.history,
            clock=self._clock,
            environ=self._environ,
            work_dir=self._work_dir,
            trigger=trigger,
            settings=self._settings.backups,
            due=due,
        )


def read_boot_id() -> str:
    """The kernel's ID of this boot: it changes exactly when the appliance restarts."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return "unknown"


def _cluster(state: DesiredState, name: str, *, strict: bool) -> ClusterState | None:
    for cluster in state.clusters:
        if cluster.name == name and cluster.phase == "present":
            return cluster
    if strict:
        known = ", ".join(c.name for c in state.clusters) or "none"
        raise ClusterUnknown(f"cluster {name} is not in this appliance's desired state ({known})")
    return None


def _policy(cluster: ClusterState, kind: type[S]) -> S | None:
    return next((s for s in cluster.schedules if isinstance(s, kind)), None)
