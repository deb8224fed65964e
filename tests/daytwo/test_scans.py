"""Scans against the real Docker driver. Each tool's image is a stand-in built from busybox
(``tools/``) that checks what the real tool needs from the agent (kube-bench: the node's
processes and k3s folder; kube-hunter: the nodes by name on the cluster's network; sonobuoy:
the admin kubeconfig, and the results it retrieved) and prints a genuine report of the real
tool (``reports/``, sources in its README)."""

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
    # kube-bench ran on both nodes, every file of the benchmark on each (reports/README.md)
    assert bench.summary is not None
    assert (
        bench.summary.passed,
        bench.summary.warned,
        bench.summary.failed,
        bench.summary.info,
        bench.summary.errored,
    ) == (2 * 37, 2 * 40, 2 * 28, 0, 2 * 17)
    assert (bench.version, bench.benchmark) == ("v0.9.4", "1.6")
    assert [(f.id, f.status, f.where) for f in bench.summary.findings][::68] == [
        ("1.1.1", "FAIL", f"{control} master"),
        ("1.1.1", "FAIL", f"{worker} master"),
    ]
    assert bench.summary.findings[0].remediation.startswith("Run the below command")
    assert [(e.id, e.where) for e in bench.summary.errors][::17] == [
        ("1.1.11", f"{control} master"),
        ("1.1.11", f"{worker} master"),
    ]
    # kube-hunter reached both nodes by name (the stand-in resolves each) and printed its report
    assert hunter.summary is not None
    assert (hunter.summary.passed, hunter.summary.warned, hunter.summary.failed) == (1, 3, 5)
    assert [(f.id, f.status) for f in hunter.summary.findings] == [
        ("KHV050", "low"), ("", "medium"), ("", "low"), ("KHV044", "high"), ("KHV043", "low"),
        ("KHV052", "medium"), ("KHV002", "high"), ("KHV005", "medium"),
    ]  # fmt: skip
    assert (hunter.version, hunter.benchmark) == ("0.6.8", "")
    # sonobuoy's summary: the conformance tests alone, not systemd-logs' one result per node
    assert sonobuoy.summary is not None
    assert (sonobuoy.summary.passed, sonobuoy.summary.failed, sonobuoy.summary.info) == (
        356,
        0,
        6615,
    )
    assert sonobuoy.summary.findings == ()
    assert (sonobuoy.version, sonobuoy.benchmark) == ("v0.57.3", "certified-conformance")
    status = operations.history.status(cluster.name)
    assert {(s.scan, s.tool, s.trigger) for s in status.scans} == {
        ("configuration", "kube-bench", Trigger.ON_DEMAND),
        ("conformance", "sonobuoy", Trigger.ON_DEMAND),
        ("penetration", "kube-hunter", Trigger.ON_DEMAND),
    }
    kept = status.to_json()["scans"][0]
    assert (kept["summary"]["failed"], kept["version"], kept["benchmark"]) == (56, "v0.9.4", "1.6")
    assert leftovers(site) == []


def test_a_scan_whose_output_is_not_its_tools_report_is_kept_as_failed(site: Site) -> None:
    cluster = site.cluster("pos", workers=0, schedules=[scan("configuration", "kube-bench")])
    desired = site.state(cluster)
    site.apply(desired)
    # sonobuoy's stand-in prints sonobuoy's summary where kube-bench's JSON is expected
    wrong = ScanTool(
        tool="kube-bench",
        image=site.images.tools["conformance"],
        argv=("/usr/local/bin/sonobuoy", "results", "/reports/sonobuoy-certified-k0s.txt"),
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
