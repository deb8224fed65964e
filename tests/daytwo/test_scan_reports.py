"""Reading the scan tools' reports: genuine output of kube-bench ``--json``, kube-hunter
``--report json`` and ``sonobuoy results`` (``reports/``, each named with its source in its
README), counted exactly; outputs that are not those reports, refused; and what a site's
status then says of a scan."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.contract import ScanStatus
from agent.daytwo.records import DayTwoStatus, Finding, RunState, ScanResult, ScanSummary, Trigger
from agent.daytwo.scans import reports
from agent.link.reports import day_two

REPORTS = Path(__file__).parent / "reports"
CIS_16 = (REPORTS / "kube-bench-cis-1.6.json").read_text()


def counts(summary: ScanSummary) -> tuple[int, int, int, int]:
    return summary.passed, summary.warned, summary.failed, summary.info


def test_a_kube_bench_run_of_every_benchmark_file_is_counted_by_result_status() -> None:
    summary = reports.kube_bench(CIS_16, node="cp-1")

    # 122 checks: 37 PASS, 49 WARN, 36 FAIL, 0 INFO, as its Totals say; of the WARN and FAIL,
    # 9 and 8 failed to run
    assert counts(summary) == (37, 40, 28, 0)
    assert summary.errored == 17
    assert summary.benchmark == "1.6"
    assert len(summary.findings) == 40 + 28
    assert {f.where for f in summary.findings} == {
        "cp-1 master", "cp-1 controlplane", "cp-1 node", "cp-1 policies",
    }  # fmt: skip
    assert summary.findings[0] == Finding(
        id="1.1.1",
        status="FAIL",
        title="Ensure that the API server pod specification file permissions are set to 644 or"
        " more restrictive (Automated)",
        where="cp-1 master",
        remediation="Run the below command (based on the file location on your system) on the"
        " master node. For example, chmod 644 /etc/kubernetes/manifests/kube-apiserver.yaml",
    )
    assert [(f.id, f.status) for f in summary.findings if f.where == "cp-1 policies"][:2] == [
        ("5.1.1", "WARN"),
        ("5.1.2", "WARN"),
    ]


def test_kube_bench_checks_that_failed_to_run_are_errors_of_the_scan_not_findings() -> None:
    summary = reports.kube_bench(CIS_16, node="cp-1")

    assert [(e.id, e.where) for e in summary.errors] == [
        ("1.1.11", "cp-1 master"), ("1.1.12", "cp-1 master"), ("1.1.19", "cp-1 master"),
        ("1.1.20", "cp-1 master"), ("1.1.21", "cp-1 master"),
        *[(n, "cp-1 node") for n in ("4.2.1", "4.2.2", "4.2.3", "4.2.4", "4.2.5", "4.2.6",
                                     "4.2.7", "4.2.9", "4.2.10", "4.2.11", "4.2.12", "4.2.13")],
    ]  # fmt: skip
    assert {e.status for e in summary.errors} == {"ERROR"}
    assert summary.errors[5].title == (
        "Ensure that the anonymous-auth argument is set to false (Automated): failed to run:"
        ' "/bin/cat /var/lib/kubelet/config.yaml", output: "/bin/cat:'
        ' /var/lib/kubelet/config.yaml: No such file or directory\\n", error: exit status 1'
    )
    not_run = {e.id for e in summary.errors}
    assert not not_run & {f.id for f in summary.findings}


def test_kube_bench_of_older_releases_prints_one_control_per_line() -> None:
    controls = json.loads(CIS_16)["Controls"]
    output = "\n".join(json.dumps(c) for c in controls)

    summary = reports.kube_bench(output)

    # the controls' own totals stand for the missing Totals, and agree
    assert counts(summary) == (37, 40, 28, 0)
    assert [(f.id, f.where) for f in summary.findings][-1] == ("5.7.4", "policies")


def test_a_kube_bench_report_whose_totals_disagree_with_its_results_is_refused() -> None:
    # kube-bench's own test data: the results cut down, the Totals left as the run printed
    with pytest.raises(reports.ReportUnreadable) as refused:
        reports.kube_bench((REPORTS / "kube-bench-trimmed.json").read_text())

    assert str(refused.value) == (
        "kube-bench's totals (49 pass, 12 fail, 14 warn, 0 info) disagree with its results"
        " (2 pass, 0 fail, 1 warn, 0 info)"
    )


def test_a_kube_bench_control_cut_short_is_refused_by_its_own_totals() -> None:
    controls = json.loads(CIS_16)["Controls"]
    del controls[0]["tests"][0]["results"][-1]
    output = "\n".join(json.dumps(c) for c in controls)

    with pytest.raises(reports.ReportUnreadable, match="disagree with its results"):
        reports.kube_bench(output)


def test_kube_hunter_0_6_report_is_counted_by_severity() -> None:
    summary = reports.kube_hunter((REPORTS / "kube-hunter-many-vul.json").read_text())

    # 8 vulnerabilities: 5 of high or medium severity fail, 3 low ones warn; of the 3
    # services, the kubelet's 10250 has none
    assert (summary.passed, summary.warned, summary.failed) == (1, 3, 5)
    assert [(f.id, f.status, f.where) for f in summary.findings] == [
        ("KHV050", "low", "Local to Pod (kube-hunter-5pmjs)"),
        ("", "medium", "Local to Pod (kube-hunter-5pmjs)"),
        ("", "low", "Local to Pod (kube-hunter-5pmjs)"),
        ("KHV044", "high", "10.0.1.1:10255"),
        ("KHV043", "low", "10.0.1.1:10255"),
        ("KHV052", "medium", "10.0.1.1:10255"),
        ("KHV002", "high", "10.0.0.1:443"),
        ("KHV005", "medium", "10.16.0.1:443"),
    ]
    assert summary.findings[6].title == (
        "K8s Version Disclosure: The kubernetes version could be obtained from the /version"
        " endpoint"
    )
    assert summary.findings[6].remediation == "https://avd.aquasec.com/kube-hunter/khv002/"


def test_kube_hunter_findings_without_an_id_get_no_link() -> None:
    report = (REPORTS / "kube-hunter-many-vul.json").read_text()
    # the report links them to https://avd.aquasec.com/kube-hunter/none/, a page that does
    # not exist
    assert report.count('"vid": "None"') == 2
    assert report.count("https://avd.aquasec.com/kube-hunter/none/") == 2

    summary = reports.kube_hunter(report)

    unnamed = [f for f in summary.findings if not f.id]
    assert [(f.title.split(":")[0], f.remediation) for f in unnamed] == [
        ("CAP_NET_RAW Enabled", ""),
        ("Access to pod's secrets", ""),
    ]


def test_kube_hunter_report_of_services_without_vulnerabilities() -> None:
    summary = reports.kube_hunter((REPORTS / "kube-hunter-zero-vul.json").read_text())

    assert (summary.passed, summary.warned, summary.failed, summary.findings) == (3, 0, 0, ())


def test_kube_hunter_reports_before_0_5_link_through_their_knowledge_base() -> None:
    report = json.loads((REPORTS / "kube-hunter-many-vul.json").read_text())
    for vulnerability in report["vulnerabilities"]:
        del vulnerability["avd_reference"]
    report["kburl"] = "https://aquasecurity.github.io/kube-hunter/kb/{vid}"

    summary = reports.kube_hunter(json.dumps(report))

    assert [f.remediation for f in summary.findings][:4] == [
        "https://aquasecurity.github.io/kube-hunter/kb/KHV050", "", "",
        "https://aquasecurity.github.io/kube-hunter/kb/KHV044",
    ]  # fmt: skip


def test_sonobuoy_results_of_one_plugin_with_a_failed_test() -> None:
    summary = reports.sonobuoy((REPORTS / "sonobuoy-e2e.txt").read_text())

    assert counts(summary) == (1, 0, 1, 1)
    assert [(f.id, f.status, f.where) for f in summary.findings] == [("e2e", "failed", "e2e")]
    assert summary.findings[0].title == (
        "[sig-storage] CSI Volumes CSI Topology test using GCE PD driver [Serial] should fail to"
        " schedule a pod with a zone missing from AllowedTopologies; PD is provisioned with"
        " immediate volume binding"
    )


def test_sonobuoy_custom_statuses_are_counted() -> None:
    summary = reports.sonobuoy((REPORTS / "sonobuoy-custom-status.txt").read_text())

    # Total: 7 = 1 passed + 1 failed + 1 skipped + complete: 2 + custom: 2
    assert counts(summary) == (1, 0, 1, 1)
    assert summary.other == 4
    assert [f.where for f in summary.findings] == ["custom-status"]


def test_sonobuoy_conformance_counts_are_kept_apart_from_systemd_logs() -> None:
    summary = reports.sonobuoy((REPORTS / "sonobuoy-certified-k0s.txt").read_text())

    # the e2e plugin's 356 conformance tests; systemd-logs' 2 results (one per node) are not
    assert counts(summary) == (356, 0, 0, 6615)
    assert summary.findings == ()


def test_sonobuoy_failures_of_another_plugin_are_findings_not_counts() -> None:
    output = (REPORTS / "sonobuoy-certified-k0s.txt").read_text()
    output = output.replace("Status: passed\nTotal: 2\nPassed: 2\nFailed: 0", "Status: failed\n"
                            "Total: 2\nPassed: 1\nFailed: 1")  # fmt: skip

    summary = reports.sonobuoy(output)

    assert counts(summary) == (356, 0, 0, 6615)
    assert [(f.where, f.title) for f in summary.findings] == [
        ("systemd-logs", "plugin systemd-logs failed")
    ]


def test_sonobuoy_results_whose_total_disagrees_with_their_counts_are_refused() -> None:
    output = (REPORTS / "sonobuoy-custom-status.txt").read_text().replace("custom: 2\n", "")

    with pytest.raises(reports.ReportUnreadable) as refused:
        reports.sonobuoy(output)

    assert str(refused.value) == "sonobuoy's plugin custom-status totals 7 results but counts 5"


def test_a_scans_status_says_which_tool_version_and_benchmark_produced_it() -> None:
    at = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
    bench = ScanResult(
        cluster="pos", scan="configuration", tool="kube-bench",
        image="docker.io/aquasec/kube-bench:v0.9.4", trigger=Trigger.SCHEDULE,
        state=RunState.DONE, started_at=at, finished_at=at,
        summary=reports.kube_bench(CIS_16, node="pos-main-1"), version="v0.9.4", benchmark="1.6",
    )  # fmt: skip
    hunt = replace(
        bench, scan="penetration", tool="kube-hunter", version="0.6.8", benchmark="",
        summary=reports.kube_hunter((REPORTS / "kube-hunter-many-vul.json").read_text()),
    )  # fmt: skip

    shown = day_two(DayTwoStatus(cluster="pos", scans=(bench, hunt)))["scans"]

    assert isinstance(shown, list)
    configuration, penetration = shown
    assert isinstance(configuration, ScanStatus) and isinstance(penetration, ScanStatus)
    assert (configuration.tool, configuration.toolVersion, configuration.benchmark) == (
        "kube-bench", "v0.9.4", "1.6",
    )  # fmt: skip
    assert (configuration.passed, configuration.warned, configuration.failed) == (37, 40, 28)
    assert configuration.errored == 17
    assert configuration.errors[0].startswith(
        "ERROR 1.1.11: Ensure that the etcd data directory permissions are set to 700 or more"
        " restrictive (Automated): failed to run:"
    )
    assert configuration.findings[0] == (
        "FAIL 1.1.1: Ensure that the API server pod specification file permissions are set to"
        " 644 or more restrictive (Automated)"
    )
    assert (penetration.toolVersion, penetration.benchmark) == ("0.6.8", "")
    assert penetration.findings[1].startswith("medium: CAP_NET_RAW Enabled: ")


@pytest.mark.parametrize(
    ("reader", "output", "message"),
    [
        (reports.kube_bench, "", "the output holds no kube-bench JSON controls"),
        (reports.kube_bench, "Error: unknown benchmark k3s-cis-9", "no kube-bench JSON"),
        (reports.kube_bench, '{"Controls": []}', "no kube-bench JSON controls"),
        (reports.kube_bench, '{"Controls": [{"id": "1"', "no kube-bench JSON controls"),
        (reports.kube_bench, CIS_16[: len(CIS_16) // 2], "no kube-bench JSON controls"),
        (reports.kube_hunter, '{"nodes": []}', "no kube-hunter JSON report"),
        (reports.kube_hunter, "Kube Hunter couldn't find any clusters", "no kube-hunter JSON"),
        (reports.sonobuoy, "error: no results found", "no sonobuoy results summary"),
        (reports.sonobuoy, "Plugin: e2e\nStatus: unknown\n", "no sonobuoy results summary"),
    ],
)
def test_an_output_that_is_not_the_report_is_refused(
    reader: Callable[[str], ScanSummary], output: str, message: str
) -> None:
    with pytest.raises(reports.ReportUnreadable, match=message):
        reader(output)


READERS = [reports.kube_bench, reports.kube_hunter, reports.sonobuoy]
# the keys the readers look up, so that random documents reach past the first lookup
KEYS = ["Controls", "Totals", "tests", "results", "status", "reason", "total_pass",
        "total_fail", "total_warn", "total_info", "version", "vulnerabilities", "services",
        "vid", "location", "severity", "avd_reference", "kburl"]  # fmt: skip


@given(reader=st.sampled_from(READERS), output=st.text())
def test_any_output_is_read_or_refused_as_unreadable(
    reader: Callable[[str], ScanSummary], output: str
) -> None:
    try:
        summary = reader(output)
    except reports.ReportUnreadable:
        return
    assert min(summary.passed, summary.warned, summary.failed, summary.info) >= 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@given(reader=st.sampled_from(READERS), document=JSON)
def test_any_json_of_the_reports_keys_is_read_or_refused_as_unreadable(
    reader: Callable[[str], ScanSummary], document: object
) -> None:
    try:
        reader(json.dumps(document))
    except reports.ReportUnreadable:
        pass


SONOBUOY = sorted(REPORTS.glob("sonobuoy-*.txt"))


@given(name=st.sampled_from(SONOBUOY), data=st.data())
def test_sonobuoy_results_cut_short_never_count_more_than_the_whole(
    name: Path, data: st.DataObject
) -> None:
    lines = name.read_text().splitlines(keepends=True)
    cut = data.draw(st.integers(min_value=0, max_value=len(lines)))
    whole = reports.sonobuoy("".join(lines))
    try:
        part = reports.sonobuoy("".join(lines[:cut]))
    except reports.ReportUnreadable:
        return
    # a plugin whose block is cut inside its counts is refused by its Total
    assert (part.passed, part.failed, part.info, part.other) == (
        whole.passed, whole.failed, whole.info, whole.other
    )  # fmt: skip
