"""Day-2 work on virtual nodes, through the private libvirtd and real guests.

The guests (``tests/libvirt/guest.py``) run the real QEMU guest agent; what they lack of a
real node is stood in for, and said so: ``pkg`` (``tests/daytwo/tools/pkg``) plays the
package manager's upgrade, and ``k3s`` (``tests/libvirt/k3s``) plays k3s's containerd client
and prints the real scan tools' report formats. Everything between the agent and the guest
is real: libvirt's guest agent commands, the guest-agent reboot, filesystem freeze, volume
streams, shutdown and start.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest

from agent.clocks import SystemClock
from agent.config import AgentConfig
from agent.contract import (
    BackupSchedule,
    ClusterState,
    DesiredState,
    PatchParameters,
    PatchSchedule,
    Schedule,
)
from agent.daytwo.operations import DayTwoSettings, Operations
from agent.daytwo.patching import PatchSettings
from agent.daytwo.records import RunState
from agent.daytwo.scans.scanning import ScanSettings
from agent.drivers.libvirt import StreamedContents
from agent.drivers.libvirt.datavolumes import LibvirtVolumes
from agent.drivers.libvirt.guests import GuestAgent
from agent.drivers.libvirt.nodes import GuestSettings, LibvirtNodes
from tests.libvirt.guest import AGENT_OFF
from tests.libvirt.harness import LibvirtAgent
from tests.libvirt.states import state
from tests.libvirt.test_daemon import real_cluster
from tests.support.hosts import RealHost

CRED = "/var/lib/rancher/k3s/server/cred"
PATCH = PatchSettings(command=("pkg",), timeout=60, reboot_timeout=240)


@dataclass
class VirtualSite:
    agent: LibvirtAgent
    host: RealHost
    tmp: Path

    @property
    def connection(self) -> Any:
        return self.agent.connection

    def cluster(self, suffix: str, *, schedules: list[Schedule] | None = None) -> ClusterState:
        """One control-plane node and one worker with a data disk."""
        base = real_cluster(self.agent, self.host, self.agent.name(suffix), workers=1)
        return base.model_copy(update={"schedules": schedules or []})

    def operations(self) -> Operations:
        nodes = LibvirtNodes(
            connection=self.connection,
            appliance=self.agent.appliance,
            clock=SystemClock(),
            settings=GuestSettings(shutdown_grace=30, start_timeout=240),
        )
        return Operations(
            data_dir=self.agent.data_dir,
            host=nodes,
            volumes=LibvirtVolumes(nodes=nodes, spool_dir=self.tmp / "spool"),
            clock=SystemClock(),
            environ={},
            settings=DayTwoSettings(patch=PATCH, scans=ScanSettings(timeout=120)),
        )

    def guest(self, node: str) -> GuestAgent:
        domain = self.connection.lookupByName(self.agent.node_domain(node).name)
        return GuestAgent(domain, clock=SystemClock())

    def wait_for_agent(self, node: str, *, timeout: float = 240) -> GuestAgent:
        deadline = time.monotonic() + timeout
        while not (agent := self.guest(node)).answers():
            assert time.monotonic() < deadline, f"the guest agent of {node} never answered"
            time.sleep(0.5)
        return agent

    def sh(self, node: str, script: str) -> str:
        found = self.guest(node).execute(["sh", "-c", script], timeout=60)
        assert found.code == 0, (found.stdout, found.stderr)
        return found.stdout.decode()

    def data_volume(self, node: str) -> bytes:
        domain = self.agent.node_domain(node).name
        (name,) = [v for v in self.agent.volumes_of(domain) if v.endswith(".data.qcow2")]
        volume = self.connection.storagePoolLookupByName(self.host.data).storageVolLookupByName(
            name
        )
        return StreamedContents(connection=self.connection).read(volume)


@pytest.fixture
def site(real_agent: LibvirtAgent, real_host: RealHost, tmp_path: Path) -> VirtualSite:
    return VirtualSite(real_agent, real_host, tmp_path)


def boot(site: VirtualSite, *clusters: ClusterState) -> DesiredState:
    desired = state(site.agent.appliance, *clusters)
    result = site.agent.apply(desired)
    assert result.ok, result
    for cluster in clusters:
        for node in cluster.nodes:
            site.wait_for_agent(node.name)
    return desired


def patch_policy() -> Schedule:
    return PatchSchedule(
        name="patch",
        cron="0 3 * * sun",
        timezone="UTC",
        parameters=PatchParameters(rebootIfRequired=True, onBoot=False),
    )


def test_virtual_nodes_are_patched_one_by_one_and_rebooted_through_the_guest_agent(
    site: VirtualSite,
) -> None:
    cluster = site.cluster("patch", schedules=[patch_policy()])
    desired = boot(site, cluster)
    control, worker = f"{cluster.name}-main-1", f"{cluster.name}-workers-1"
    boots = {node: site.guest(node).boot_id() for node in (control, worker)}
    site.sh(worker, "mkdir -p /etc/pkg && touch /etc/pkg/kernel-pending")

    (result,) = site.operations().run_now("patch", state=desired, cluster=cluster.name)

    assert result.state is RunState.DONE, result.error
    assert [(n.node, n.previous, n.version) for n in result.nodes] == [
        (control, "3.19.0", "3.19.1"),
        (worker, "3.19.0", "3.19.1"),
    ]  # control plane first, as the pools are ordered
    assert [(n.rebooted, n.reboot_required) for n in result.nodes] == [
        (False, False),
        (True, False),  # the marker went with the reboot
    ]
    assert site.guest(control).boot_id() == boots[control]
    assert site.guest(worker).boot_id() != boots[worker]


def test_a_failing_upgrade_stops_the_run_at_that_node(site: VirtualSite) -> None:
    cluster = site.cluster("broken")
    desired = boot(site, cluster)
    control = f"{cluster.name}-main-1"
    site.sh(control, "mkdir -p /etc/pkg && touch /etc/pkg/broken")

    (result,) = site.operations().run_now("patch", state=desired, cluster=cluster.name)

    assert result.state is RunState.FAILED
    assert [(n.node, n.state) for n in result.nodes] == [(control, RunState.FAILED)]
    assert "upgrade exited 99: ERROR: unable to lock database" in (result.nodes[0].error or "")
    assert site.sh(f"{cluster.name}-workers-1", ". /etc/os-release; echo $VERSION_ID") == "3.19.0\n"


def test_scans_run_in_a_virtual_nodes_container_runtime(site: VirtualSite) -> None:
    cluster = site.cluster("scan")
    desired = boot(site, cluster)
    control = f"{cluster.name}-main-1"
    operations = site.operations()

    # what a k3s server leaves for sonobuoy: the admin kubeconfig
    site.sh(control, f"mkdir -p {CRED} && echo 'apiVersion: v1' > {CRED}/admin.kubeconfig")

    configuration, penetration, conformance = (
        operations.run_now("scan", state=desired, cluster=cluster.name, scan=scan)[0]
        for scan in ("configuration", "penetration", "conformance")
    )

    assert configuration.state is RunState.DONE, configuration.error
    assert configuration.summary is not None and configuration.summary.failed > 0
    assert penetration.state is RunState.DONE, penetration.error
    assert penetration.summary is not None
    assert conformance.state is RunState.DONE, conformance.error
    assert conformance.summary is not None and conformance.summary.passed > 0
    runs = site.sh(control, "cat /tmp/ctr-runs").splitlines()
    assert [run.split()[2] for run in runs] == [
        "docker.io/aquasec/kube-bench:v0.9.4",  # once per node ...
        "docker.io/aquasec/kube-hunter:0.6.8",  # ... of which one here; the hunt from here
        "docker.io/sonobuoy/sonobuoy:v0.57.3",  # against the control plane, from it
    ]
    worker_runs = site.sh(f"{cluster.name}-workers-1", "cat /tmp/ctr-runs").splitlines()
    assert [run.split()[2] for run in worker_runs] == ["docker.io/aquasec/kube-bench:v0.9.4"]
    # the hunt was given both nodes (by address where the guest reports one)
    hunted = runs[1].split("--remote ")[1].split(" --report")[0].split()
    assert len(hunted) == 2


def backup_policy(folder: Path, prefix: str) -> Schedule:
    return BackupSchedule(
        name="backup",
        cron="0 23 * * *",
        timezone="UTC",
        parameters={
            "location": {"name": "local-disk", "provider": "file", "path": str(folder)},
            "prefix": prefix,
            "expiryHours": 24,
            "namespaces": [],
            "includeClusterResources": "auto",
        },
    )


MARK = "edgefleet-data-{}"
READ_MARK = "dd if=/dev/vdb bs=512 skip=2048 count=1 2>/dev/null | tr -d '\\000'"


def write_mark(site: VirtualSite, node: str, text: str) -> None:
    site.sh(node, f"printf '%s' {text} | dd of=/dev/vdb bs=512 seek=2048 conv=notrunc,fsync")


def agent_cli(site: VirtualSite, *args: str) -> subprocess.CompletedProcess[str]:
    """``edgefleet-agent ARGS`` as an operator runs it on the appliance, configured for this
    appliance's libvirt (the config ``edge-installer -v true`` writes, with a test URI)."""
    config = site.tmp / "agent.yaml"
    if not config.exists():
        AgentConfig(
            applianceId=site.agent.appliance,
            ip="127.0.0.1",
            dataDir=str(site.agent.data_dir),
            isVirtual=True,
            libvirtUri=site.host.uri,
            libvirtDomainType="qemu",
        ).save(config)
    return subprocess.run(
        [str(Path(sys.executable).with_name("edgefleet-agent")), *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_data_disks_are_backed_up_and_restored_into_another_cluster_byte_for_byte(
    site: VirtualSite,
) -> None:
    folder = site.tmp / "backups"
    source = site.cluster("src")
    source = source.model_copy(update={"schedules": [backup_policy(folder, "site/vms")]})
    target = site.cluster("dst")
    boot(site, source, target)
    source_worker, target_worker = f"{source.name}-workers-1", f"{target.name}-workers-1"
    write_mark(site, source_worker, MARK.format("a1"))
    write_mark(site, target_worker, MARK.format("b2"))

    backup = agent_cli(site, "run-now", "backup", "--cluster", source.name)

    assert backup.returncode == 0, backup.stderr
    (result,) = json.loads(backup.stdout)
    assert result["state"] == "done", result
    stored = folder / "site/vms" / result["id"]
    manifest = json.loads((stored / "manifest.json").read_text())
    assert [(f["node"], f["role"], f["path"]) for f in manifest["files"]] == [
        (source_worker, "worker", "/dev/vdb")
    ]
    assert manifest["consistency"].startswith("consistent: filesystems frozen by the guest agent")
    for file in manifest["files"]:
        data = (stored / file["name"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (file["size"], file["sha256"])
    assert site.sh(source_worker, READ_MARK) == MARK.format("a1")  # thawed: still answering
    before = site.data_volume(source_worker)

    # a corrupted copy is refused before anything is stopped or written
    archive = stored / manifest["files"][0]["name"]
    good = archive.read_bytes()
    archive.write_bytes(good[:-10] + bytes(10))
    target_before = site.data_volume(target_worker)
    boot_id = site.guest(target_worker).boot_id()
    refused = agent_cli(site, "restore", "--backup", result["id"], "--cluster", target.name)
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("is corrupted (sha256 mismatch)"), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert site.data_volume(target_worker) == target_before
    assert site.guest(target_worker).boot_id() == boot_id
    archive.write_bytes(good)

    restored = agent_cli(site, "restore", "--backup", result["id"], "--cluster", target.name)

    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["cluster"] == target.name
    assert site.data_volume(target_worker) == before
    site.wait_for_agent(target_worker)
    assert site.sh(target_worker, READ_MARK) == MARK.format("a1")
    assert site.guest(target_worker).boot_id() != boot_id  # it was stopped and started
    # the source cluster kept running through it all
    assert site.sh(source_worker, READ_MARK) == MARK.format("a1")


def test_a_node_whose_guest_agent_is_silent_is_paused_for_a_backup_and_not_patched(
    site: VirtualSite,
) -> None:
    folder = site.tmp / "backups"
    cluster = site.cluster("silent", schedules=[backup_policy(folder, "p"), patch_policy()])
    desired = boot(site, cluster)
    control, worker = f"{cluster.name}-main-1", f"{cluster.name}-workers-1"
    write_mark(site, worker, MARK.format("s1"))
    # the agent stops in the guest (as in an image without qemu-guest-agent)
    kill = ["-c", f"sleep 1; touch {AGENT_OFF}; kill $(pidof qemu-ga)"]
    site.guest(worker).command("guest-exec", {"path": "sh", "arg": kill})
    deadline = time.monotonic() + 60
    while site.guest(worker).answers():
        assert time.monotonic() < deadline, "the guest agent kept answering"
        time.sleep(0.5)
    operations = site.operations()
    domain = site.connection.lookupByName(site.agent.node_domain(worker).name)

    (backup,) = operations.run_now("backup", state=desired, cluster=cluster.name)

    assert backup.state is RunState.DONE, backup.error
    manifest = json.loads((folder / "p" / backup.id / "manifest.json").read_text())
    assert manifest["consistency"] == (
        f"consistent: filesystems frozen by the guest agent on {control};"
        f" paused (no guest agent answer) {worker}"
    )
    assert domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING  # resumed

    (patch,) = operations.run_now("patch", state=desired, cluster=cluster.name)

    assert patch.state is RunState.FAILED
    assert [(n.node, n.state) for n in patch.nodes] == [
        (control, RunState.DONE),
        (worker, RunState.FAILED),
    ]
    assert f"the guest agent of {worker} does not answer" in (patch.nodes[1].error or "")
