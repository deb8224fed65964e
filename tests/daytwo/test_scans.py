"""Scans against the real Docker driver. Each tool's image is a stand-in built from busybox
(``tools/``) that checks what the real tool needs from the agent (kube-bench: the node's
processes and k3s folder; kube-hunter: the nodes by name on the cluster's network; sonobuoy:
the admin kubeconfig, and the results it retrieved) and prints the real tool's report format
(``reports/``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from agent.contract import ScanParameters, ScanSchedule, Schedule
from agent.daytwo.records import RunState, Trigger
from agent.daytwo.scans.scanning import ScanSettings, ScanTool
from agent.drivers.docker.nodes import DAYTWO
from tests.support.daytwo import Site


def scan(name: str, tool: str, cron: str = "0 4 * * mon") -> Schedule:
    return ScanSchedule(
        name=f"scan-{name}", cron=cron, timezone="UTC",
        parameters=ScanParameters(scan=name, tool=tool),
    )  # fmt: skip


def leftovers(site: Site) -> list[str]:
    found = site.agent.client.containers.list(
        all=True, filters={"label": [f"{DAYTWO}={site.appliance}"]}
    )
    return [c.name or "" for c in found]


def test_the_declared_scans_run_and_their_reports_are_summarized(site: Site) -> None:
    cluster = site.cluster(
        "pos",
        workers=1,
        schedules=[scan("configuration", "kube-bench"), scan("penetration", "kube-hunter"),
                   scan("conformance", "sonobuoy")],
    )  # fmt: skip
    desired = site.state(cluster)
    site.apply(desired)
    operations = site.operations()
    control, worker = f"{cluster.name}-main-1", f"{cluster.name}-workers-1"

    bench, hunter, sonobuoy = operations.run_now("scan", state=desired, cluster=cluster.name)

    assert [r.state for r in (bench, hunter, sonobuoy)] == [RunState.DONE] * 3, (
        bench,
        hunter,
        sonobuoy,
    )
    # kube-bench ran on both nodes: master checks on the control plane, node checks elsewhere
    assert bench.summary is not None
    assert (
        bench.summary.passed,
        bench.summary.warned,
        bench.summary.failed,
        bench.summary.info,
    ) == (4, 2, 1, 1)
    assert [(f.id, f.status, f.where) for f in bench.summary.findings] == [
        ("1.1.12", "FAIL", f"{control} master"),
        ("1.2.9", "WARN", f"{control} master"),
        ("4.1.10", "WARN", f"{worker} node"),
    ]
    assert bench.summary.findings[0].remediation.startswith("On the etcd server node")
    # kube-hunter reached both nodes by name; the first one is reported vulnerable
    assert hunter.summary is not None
    assert (hunter.summary.passed, hunter.summary.warned, hunter.summary.failed) == (2, 1, 1)
    assert [(f.id, f.status, f.where) for f in hunter.summary.findings] == [
        ("KHV036", "high", f"{control}:10250"),
        ("KHV002", "low", f"{control}:6443"),
    ]
    # sonobuoy's summary: two failed conformance tests
    assert sonobuoy.summary is not None
    assert (sonobuoy.summary.passed, sonobuoy.summary.failed, sonobuoy.summary.info) == (
        401,
        2,
        6811,
    )
    assert [f.title for f in sonobuoy.summary.findings] == [
        "[sig-network] Services should serve endpoints on same port and different protocols"
        " [Conformance]",
        "[sig-node] Pods should delete a collection of pods [Conformance]",
    ]
    status = operations.history.status(cluster.name)
    assert {(s.scan, s.tool, s.trigger) for s in status.scans} == {
        ("configuration", "kube-bench", Trigger.ON_DEMAND),
        ("conformance", "sonobuoy", Trigger.ON_DEMAND),
        ("penetration", "kube-hunter", Trigger.ON_DEMAND),
    }
    assert status.to_json()["scans"][0]["summary"]["failed"] == 1
    assert leftovers(site) == []


def test_a_scan_whose_output_is_not_its_tools_report_is_kept_as_failed(site: Site) -> None:
    cluster = site.cluster("pos", workers=0, schedules=[scan("configuration", "kube-bench")])
    desired = site.state(cluster)
    site.apply(desired)
    # sonobuoy's stand-in prints sonobuoy's summary where kube-bench's JSON is expected
    wrong = ScanTool(
        tool="kube-bench",
        image=site.images.tools["conformance"],
        argv=("/usr/local/bin/sonobuoy", "results", "/reports/sonobuoy.txt"),
        target="each-node",
    )
    operations = site.operations(scans=ScanSettings(tools={"configuration": wrong}, timeout=60))

    (result,) = operations.run_now("scan", state=desired, cluster=cluster.name)

    assert result.state is RunState.FAILED
    assert result.summary is None
    assert result.error == (
        f"kube-bench on {cluster.name}-main-1 exited 0: the output holds no kube-bench JSON"
        " controls"
    )
    (kept,) = operations.history.status(cluster.name).scans
    assert (kept.state, kept.error) == (RunState.FAILED, result.error)
    assert leftovers(site) == []


def test_the_sonobuoy_stand_in_needs_the_results_its_retrieve_wrote(tmp_path: Path) -> None:
    tool = ["sh", str(Path(__file__).parent / "tools" / "sonobuoy")]
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text("apiVersion: v1\n")

    missing = subprocess.run(
        [*tool, "results", str(tmp_path / "none.tar.gz")], capture_output=True, text=True
    )
    retrieved = subprocess.run(
        [*tool, "retrieve", "--kubeconfig", str(kubeconfig), str(tmp_path)],
        capture_output=True,
        text=True,
    )

    assert (missing.returncode, missing.stdout) == (1, "")
    assert "no results tarball" in missing.stderr
    assert retrieved.returncode == 0, retrieved.stderr
    assert Path(retrieved.stdout.strip()).parent == tmp_path
    assert Path(retrieved.stdout.strip()).is_file()
