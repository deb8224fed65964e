"""Day-2 tests' appliance: its agent, its day-2 collaborators (Docker's nodes and volumes,
:class:`~agent.daytwo.operations.Operations`) and the images they run."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.clocks import SystemClock
from agent.contract import ClusterState, DesiredState, MaintenanceWindow, Schedule
from agent.daytwo.operations import DayTwoSettings, Operations
from agent.daytwo.patching import PatchSettings
from agent.daytwo.scans.scanning import ScanSettings, default_tools
from agent.drivers.docker.datavolumes import DockerVolumes
from agent.drivers.docker.nodes import DAYTWO, DockerNodes
from tests.support.appliances import RUN_LABEL, Agent, remove_labelled
from tests.support.states import cluster, state

PATCH = PatchSettings(command=("/usr/sbin/pkg", "upgrade"), timeout=30, reboot_timeout=30)
REPORTS = Path(__file__).resolve().parents[1] / "daytwo" / "reports"
# the genuine report each scan tool's stand-in prints (reports/README.md names their sources)
STAND_IN_REPORTS = {
    "kube-bench": "kube-bench-cis-1.6.json",
    "kube-hunter": "kube-hunter-many-vul.json",
    "sonobuoy": "sonobuoy-certified-k0s.txt",
}


@dataclass(frozen=True)
class Images:
    node: str
    tools: dict[str, str]  # scan type -> image


@dataclass
class Site:
    """One appliance: its agent (apply), its day-2 collaborators, and states to apply."""

    agent: Agent
    images: Images
    environ: dict[str, str] = field(default_factory=dict)

    @property
    def appliance(self) -> str:
        return self.agent.appliance

    def name(self, suffix: str) -> str:
        return f"{self.appliance}-{suffix}"

    def cluster(
        self,
        suffix: str,
        *,
        workers: int = 1,
        schedules: list[Schedule] | None = None,
        windows: list[MaintenanceWindow] | None = None,
        timezone: str = "UTC",
    ) -> ClusterState:
        base = cluster(self.name(suffix), appliance=self.appliance, workers=workers)
        return base.model_copy(
            update={
                "schedules": schedules or [],
                "maintenanceWindows": windows or [],
                "timezone": timezone,
            }
        )

    def state(self, *clusters: ClusterState) -> DesiredState:
        return state(self.appliance, *clusters)

    def apply(self, desired: DesiredState) -> None:
        result = self.agent.apply(desired)
        assert result.ok, result

    def nodes(self) -> DockerNodes:
        return DockerNodes(
            client=self.agent.client,
            appliance=self.appliance,
            clock=SystemClock(),
            labels={RUN_LABEL: self.agent.run_id},
        )

    def operations(self, **changes: Any) -> Operations:
        nodes = self.nodes()
        tools = {
            scan: replace(tool, image=self.images.tools[scan])
            for scan, tool in default_tools().items()
        }
        settings = DayTwoSettings(
            patch=changes.pop("patch", PATCH),
            scans=changes.pop("scans", ScanSettings(tools=tools, timeout=60)),
        )
        return Operations(
            data_dir=self.agent.data_dir,
            host=nodes,
            volumes=DockerVolumes(nodes=nodes, start_timeout=30),
            clock=changes.pop("clock", SystemClock()),
            environ=self.environ,
            settings=settings,
            **changes,
        )

    def exec(self, node: str, *command: str) -> str:
        result = self.agent.node_container(node).exec_run(list(command))
        assert result.exit_code == 0, result.output
        assert isinstance(result.output, bytes)
        return result.output.decode()

    def remove_everything(self) -> None:
        self.agent.remove_everything()
        remove_labelled(self.agent.client, f"{DAYTWO}={self.appliance}")
