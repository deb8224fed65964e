"""Reading the scan tools' reports: the formats the real tools print (samples in
``reports/``, shaped as kube-bench ``--json``, kube-hunter ``--report json`` and sonobuoy's
results summary print them), and outputs that are not those reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.daytwo.scans import reports

REPORTS = Path(__file__).parent / "reports"


def test_kube_bench_json_is_counted_by_result_status() -> None:
    summary = reports.kube_bench((REPORTS / "kube-bench-master.json").read_text(), node="cp-1")

    assert (summary.passed, summary.warned, summary.failed, summary.info) == (3, 1, 1, 0)
    assert [(f.id, f.status, f.where) for f in summary.findings] == [
        ("1.1.12", "FAIL", "cp-1 master"),
        ("1.2.9", "WARN", "cp-1 master"),
    ]
    assert summary.findings[0].title.startswith("Ensure that the etcd data directory ownership")


def test_kube_bench_of_older_releases_prints_one_control_per_line() -> None:
    controls = json.loads((REPORTS / "kube-bench-master.json").read_text())["Controls"]
    node = json.loads((REPORTS / "kube-bench-node.json").read_text())["Controls"]
    output = "\n".join(json.dumps(c) for c in controls + node)

    summary = reports.kube_bench(output)

    assert (summary.passed, summary.warned, summary.failed, summary.info) == (4, 2, 1, 1)


def test_kube_hunter_json_after_its_log_lines() -> None:
    report = (REPORTS / "kube-hunter.json").read_text()
    report = report.replace("@NODES@", '{"type": "Node/Master", "location": "n1"}')
    report = report.replace(
        "@SERVICES@",
        '{"service": "Kubelet API", "location": "n1:10250"},'
        ' {"service": "API Server", "location": "n1:6443"},'
        ' {"service": "Kubelet API", "location": "n2:10250"}',
    )
    output = "2026-11-25 10:00:00,000 INFO Started hunting\n" + report.replace("@FIRST@", "n1")

    summary = reports.kube_hunter(output)

    assert (summary.passed, summary.warned, summary.failed) == (1, 1, 1)
    assert [(f.id, f.status, f.where) for f in summary.findings] == [
        ("KHV036", "high", "n1:10250"),
        ("KHV002", "low", "n1:6443"),
    ]
    assert summary.findings[0].remediation == "https://avd.aquasec.com/kube-hunter/khv036/"


def test_sonobuoy_results_summary_with_failed_tests() -> None:
    summary = reports.sonobuoy((REPORTS / "sonobuoy.txt").read_text())

    assert (summary.passed, summary.warned, summary.failed, summary.info) == (401, 0, 2, 6811)
    assert [(f.id, f.status) for f in summary.findings] == [("e2e", "failed")] * 2


@pytest.mark.parametrize(
    ("reader", "output", "message"),
    [
        (reports.kube_bench, "", "the output holds no kube-bench JSON controls"),
        (reports.kube_bench, "Error: unknown benchmark k3s-cis-9", "no kube-bench JSON"),
        (reports.kube_bench, '{"Controls": []}', "no kube-bench JSON controls"),
        (reports.kube_bench, '{"Controls": [{"id": "1"', "no kube-bench JSON controls"),
        (reports.kube_hunter, '{"nodes": []}', "no kube-hunter JSON report"),
        (reports.kube_hunter, "Kube Hunter couldn't find any clusters", "no kube-hunter JSON"),
        (reports.sonobuoy, "error: no results found", "no sonobuoy results summary"),
        (reports.sonobuoy, "Plugin: e2e\nStatus: unknown\n", "no sonobuoy results summary"),
    ],
)
def test_an_output_that_is_not_the_report_is_refused(
    reader: object, output: str, message: str
) -> None:
    with pytest.raises(reports.ReportUnreadable, match=message):
        reader(output)  # type: ignore[operator]
