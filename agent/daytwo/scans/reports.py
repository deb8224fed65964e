"""The scan tools' reports read into a :class:`~agent.daytwo.records.ScanSummary`: kube-bench
``--json``, kube-hunter ``--report json`` and sonobuoy's results summary. Pure functions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.daytwo import DayTwoError
from agent.daytwo.records import FINDINGS_KEPT, Finding, ScanSummary, clip

SEVERE = {"high", "medium", "critical"}
# kube-bench's reason for a check whose audit command exited non-zero (its check/check.go)
NOT_RUN = "failed to run"
# kube-hunter's ID of a vulnerability that has none, and so has no knowledge-base page
NO_VID = {"", "None"}
CONFORMANCE_PLUGIN = "e2e"  # the plugin of the Kubernetes conformance tests
_BENCH_STATUSES = ("PASS", "FAIL", "WARN", "INFO")
_SONOBUOY_COUNT = re.compile(r"^(.+?):\s*(\d+)$")


class ReportUnreadable(DayTwoError): ...


def kube_bench(output: str, *, node: str = "") -> ScanSummary:
    """Every result of every control, counted by status. A FAIL or WARN whose audit command
    failed to run is an error of the scan, not a finding; the counts must add up to the
    report's own totals."""
    documents = list(_json_documents(output))
    controls = [
        control
        for document in documents
        for control in (
            _list(document.get("Controls", [document])) if isinstance(document, dict) else document
        )
        if isinstance(control, dict) and "tests" in control
    ]
    if not controls:
        raise ReportUnreadable("the output holds no kube-bench JSON controls")
    counts = dict.fromkeys(_BENCH_STATUSES, 0)
    not_run = dict.fromkeys(_BENCH_STATUSES, 0)
    findings: list[Finding] = []
    errors: list[Finding] = []
    for control in controls:
        where = " ".join(filter(None, (node, str(control.get("node_type") or ""))))
        for result in _bench_results(control):
            status = str(result.get("status", "")).upper()
            if status in counts:
                counts[status] += 1
            if status not in ("FAIL", "WARN"):
                continue
            number, title = str(result.get("test_number", "")), str(result.get("test_desc", ""))
            reason = str(result.get("reason") or "")
            if reason.startswith(NOT_RUN):
                not_run[status] += 1
                errors.append(
                    Finding(id=number, status="ERROR", title=clip(f"{title}: {reason}"),
                            where=where)
                )  # fmt: skip
            else:
                findings.append(
                    Finding(id=number, status=status, title=clip(title), where=where,
                            remediation=clip(str(result.get("remediation", ""))))
                )  # fmt: skip
    _check_totals(documents, controls, counts)
    return ScanSummary(
        passed=counts["PASS"],
        warned=counts["WARN"] - not_run["WARN"],
        failed=counts["FAIL"] - not_run["FAIL"],
        info=counts["INFO"],
        findings=tuple(findings[:FINDINGS_KEPT]),
        errored=len(errors),
        errors=tuple(errors[:FINDINGS_KEPT]),
        benchmark=", ".join(sorted({str(c["version"]) for c in controls if c.get("version")})),
    )


def _bench_results(control: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for group in _list(control.get("tests")):
        if isinstance(group, dict):
            yield from (r for r in _list(group.get("results")) if isinstance(r, dict))


def _check_totals(
    documents: Sequence[Any], controls: Sequence[dict[str, Any]], counts: dict[str, int]
) -> None:
    """The report's ``Totals`` (or, in the older layout without them, each control's
    ``total_*``) against the results counted: a report cut short or edited disagrees."""
    keys = {status: f"total_{status.lower()}" for status in _BENCH_STATUSES}
    sources = [d["Totals"] for d in documents if isinstance(d, dict) and "Totals" in d]
    if not sources and all(all(k in c for k in keys.values()) for c in controls):
        sources = list(controls)
    if not sources:
        return
    try:
        said = {s: sum(int(source[k]) for source in sources) for s, k in keys.items()}
    except (TypeError, ValueError, KeyError) as e:
        raise ReportUnreadable(f"kube-bench's totals are not counts ({e})") from e
    if said != counts:
        raise ReportUnreadable(
            f"kube-bench's totals ({_bench_counts(said)}) disagree with its results"
            f" ({_bench_counts(counts)})"
        )


def _bench_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[s]} {s.lower()}" for s in _BENCH_STATUSES)


def kube_hunter(output: str) -> ScanSummary:
    """The last report in the output: a vulnerability of high or medium severity fails, a
    lower one warns, and a service with none passes."""
    reports = [d for d in _json_documents(output) if isinstance(d, dict) and "vulnerabilities" in d]
    if not reports:
        raise ReportUnreadable("the output holds no kube-hunter JSON report")
    report = reports[-1]
    vulnerabilities = [v for v in _list(report.get("vulnerabilities")) if isinstance(v, dict)]
    vulnerable = {str(v.get("location", "")) for v in vulnerabilities}
    services = [s for s in _list(report.get("services")) if isinstance(s, dict)]
    failed = sum(1 for v in vulnerabilities if str(v.get("severity", "")).lower() in SEVERE)
    knowledge_base = str(report.get("kburl") or "")  # before 0.5: one link pattern per report
    findings = []
    for v in vulnerabilities:
        vid = str(v.get("vid") or "")
        link = ""
        if vid not in NO_VID:
            link = str(v.get("avd_reference") or knowledge_base.replace("{vid}", vid))
        findings.append(
            Finding(
                id="" if vid in NO_VID else vid,
                status=str(v.get("severity", "unknown")).lower(),
                title=clip(f"{v.get('vulnerability', '')}: {v.get('description', '')}"),
                where=str(v.get("location", "")),
                remediation=clip(link),
            )
        )
    return ScanSummary(
        passed=sum(1 for s in services if str(s.get("location", "")) not in vulnerable),
        warned=len(vulnerabilities) - failed,
        failed=failed,
        findings=tuple(findings[:FINDINGS_KEPT]),
    )


@dataclass
class _Plugin:
    name: str
    status: str = ""
    counts: dict[str, int] = field(default_factory=dict)  # as printed: Total, Passed, ...
    failed_tests: list[str] = field(default_factory=list)

    @property
    def custom(self) -> int:
        """Results of the plugin's own statuses (``complete: 2``), after the built-in ones."""
        builtin = ("Total", "Passed", "Failed", "Skipped")
        return sum(n for status, n in self.counts.items() if status not in builtin)


def sonobuoy(output: str) -> ScanSummary:
    """``sonobuoy results``: one block per plugin, then the run's details. The counts are the
    conformance plugin's (every plugin's when it did not run); another plugin (systemd-logs:
    one result per node) adds only its failures as findings."""
    plugins = _sonobuoy_plugins(output)
    if not plugins or not all("Passed" in p.counts and "Failed" in p.counts for p in plugins):
        raise ReportUnreadable("the output holds no sonobuoy results summary")
    for p in plugins:
        total = p.counts.get("Total")
        added = p.counts["Passed"] + p.counts["Failed"] + p.counts.get("Skipped", 0) + p.custom
        if total is not None and total != added:
            raise ReportUnreadable(
                f"sonobuoy's plugin {p.name} totals {total} results but counts {added}"
            )
    counted = [p for p in plugins if p.name == CONFORMANCE_PLUGIN] or plugins
    findings: list[Finding] = []
    for p in plugins:
        findings.extend(
            Finding(id=p.name, status="failed", title=clip(test), where=p.name)
            for test in p.failed_tests
        )
        if p.status == "failed" and not p.failed_tests:
            findings.append(
                Finding(id=p.name, status="failed", title=f"plugin {p.name} failed", where=p.name)
            )
    return ScanSummary(
        passed=sum(p.counts["Passed"] for p in counted),
        warned=0,
        failed=sum(p.counts["Failed"] for p in counted),
        info=sum(p.counts.get("Skipped", 0) for p in counted),
        other=sum(p.custom for p in counted),
        findings=tuple(findings[:FINDINGS_KEPT]),
    )


def _sonobuoy_plugins(output: str) -> list[_Plugin]:
    plugins: list[_Plugin] = []
    listing = False
    for raw in output.splitlines():
        line = raw.strip()
        if line.startswith("Plugin:"):
            plugins.append(_Plugin(line.partition(":")[2].strip()))
            listing = False
        elif line.startswith("Run Details:"):
            break  # the cluster's health and log errors: no plugin's results
        elif not plugins:
            continue
        elif line == "Failed tests:":
            listing = True
        elif not line:
            listing = False
        elif listing:
            plugins[-1].failed_tests.append(line)
        elif line.startswith("Status:"):
            plugins[-1].status = line.partition(":")[2].strip()
        elif match := _SONOBUOY_COUNT.match(line):
            plugins[-1].counts[match.group(1)] = int(match.group(2))
    return plugins


def merge(summaries: Sequence[ScanSummary]) -> ScanSummary:
    """One summary of several nodes' reports."""
    return ScanSummary(
        passed=sum(s.passed for s in summaries),
        warned=sum(s.warned for s in summaries),
        failed=sum(s.failed for s in summaries),
        info=sum(s.info for s in summaries),
        findings=tuple(f for s in summaries for f in s.findings)[:FINDINGS_KEPT],
        errored=sum(s.errored for s in summaries),
        errors=tuple(e for s in summaries for e in s.errors)[:FINDINGS_KEPT],
        other=sum(s.other for s in summaries),
        benchmark=", ".join(sorted({s.benchmark for s in summaries if s.benchmark})),
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json_documents(output: str) -> Iterator[Any]:
    """Every JSON object or list that starts a line, in order; other lines are skipped."""
    decoder = json.JSONDecoder()
    text = output.strip()
    position = 0
    while position < len(text):
        starts = [i for i in (text.find("{", position), text.find("[", position)) if i >= 0]
        if not starts:
            return
        start = min(starts)
        line_start = text.rfind("\n", 0, start) + 1
        if text[line_start:start].strip():
            position = start + 1
            continue
        try:
            document, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        yield document
        position = end
