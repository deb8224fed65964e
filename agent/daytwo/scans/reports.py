"""The scan tools' reports read into a :class:`~agent.daytwo.records.ScanSummary`: kube-bench
``--json``, kube-hunter ``--report json`` and sonobuoy's results summary. Pure functions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from agent.daytwo import DayTwoError
from agent.daytwo.records import FINDINGS_KEPT, Finding, ScanSummary, clip

SEVERE = {"high", "medium", "critical"}
_SONOBUOY_COUNT = re.compile(r"^(Total|Passed|Failed|Skipped):\s*(\d+)\s*$")


class ReportUnreadable(DayTwoError): ...


def kube_bench(output: str, *, node: str = "") -> ScanSummary:
    controls = [
        control
        for document in _json_documents(output)
        for control in (
            document.get("Controls", [document]) if isinstance(document, dict) else document
        )
        if isinstance(control, dict) and "tests" in control
    ]
    if not controls:
        raise ReportUnreadable("the output holds no kube-bench JSON controls")
    counts = {"PASS": 0, "WARN": 0, "FAIL": 0, "INFO": 0}
    findings = []
    for control in controls:
        for group in control.get("tests") or []:
            for result in group.get("results") or []:
                status = str(result.get("status", "")).upper()
                if status in counts:
                    counts[status] += 1
                if status in ("FAIL", "WARN"):
                    where = " ".join(filter(None, (node, control.get("node_type"))))
                    findings.append(
                        Finding(
                            id=str(result.get("test_number", "")),
                            status=status,
                            title=clip(str(result.get("test_desc", ""))),
                            where=where,
                            remediation=clip(str(result.get("remediation", ""))),
                        )
                    )
    return ScanSummary(
        passed=counts["PASS"],
        warned=counts["WARN"],
        failed=counts["FAIL"],
        info=counts["INFO"],
        findings=tuple(findings[:FINDINGS_KEPT]),
    )


def kube_hunter(output: str) -> ScanSummary:
    reports = [d for d in _json_documents(output) if isinstance(d, dict) and "vulnerabilities" in d]
    if not reports:
        raise ReportUnreadable("the output holds no kube-hunter JSON report")
    report = reports[-1]
    vulnerabilities = [v for v in report.get("vulnerabilities") or [] if isinstance(v, dict)]
    vulnerable = {str(v.get("location", "")) for v in vulnerabilities}
    services = [s for s in report.get("services") or [] if isinstance(s, dict)]
    failed = sum(1 for v in vulnerabilities if str(v.get("severity", "")).lower() in SEVERE)
    findings = tuple(
        Finding(
            id=str(v.get("vid", "")),
            status=str(v.get("severity", "unknown")).lower(),
            title=clip(f"{v.get('vulnerability', '')}: {v.get('description', '')}"),
            where=str(v.get("location", "")),
            remediation=clip(str(v.get("avd_reference", ""))),
        )
        for v in vulnerabilities
    )
    return ScanSummary(
        passed=sum(1 for s in services if str(s.get("location", "")) not in vulnerable),
        warned=len(vulnerabilities) - failed,
        failed=failed,
        findings=findings[:FINDINGS_KEPT],
    )


def sonobuoy(output: str) -> ScanSummary:
    plugins: list[dict[str, Any]] = []
    listing = False
    for raw in output.splitlines():
        line = raw.strip()
        if line.startswith("Plugin:"):
            plugins.append({"name": line.partition(":")[2].strip(), "failed_tests": []})
            listing = False
        elif not plugins:
            continue
        elif line.startswith("Run Details:"):
            listing = False
            plugins.append({"name": "", "failed_tests": [], "end": True})
        elif plugins[-1].get("end"):
            continue
        elif line == "Failed tests:":
            listing = True
        elif listing and line:
            plugins[-1]["failed_tests"].append(line)
        elif not line:
            listing = False
        elif line.startswith("Status:"):
            plugins[-1]["status"] = line.partition(":")[2].strip()
        elif match := _SONOBUOY_COUNT.match(line):
            plugins[-1][match.group(1)] = int(match.group(2))
    plugins = [p for p in plugins if not p.get("end")]
    if not plugins or not all("Passed" in p and "Failed" in p for p in plugins):
        raise ReportUnreadable("the output holds no sonobuoy results summary")
    findings: list[Finding] = []
    for plugin in plugins:
        tests: Sequence[str] = plugin["failed_tests"]
        findings.extend(
            Finding(id=plugin["name"], status="failed", title=clip(test), where=plugin["name"])
            for test in tests
        )
        if plugin.get("status") == "failed" and not tests:
            findings.append(
                Finding(
                    id=plugin["name"],
                    status="failed",
                    title=f"plugin {plugin['name']} failed",
                    where=plugin["name"],
                )
            )
    return ScanSummary(
        passed=sum(p["Passed"] for p in plugins),
        warned=0,
        failed=sum(p["Failed"] for p in plugins),
        info=sum(p.get("Skipped", 0) for p in plugins),
        findings=tuple(findings[:FINDINGS_KEPT]),
    )


def merge(summaries: Sequence[ScanSummary]) -> ScanSummary:
    """One summary of several nodes' reports."""
    return ScanSummary(
        passed=sum(s.passed for s in summaries),
        warned=sum(s.warned for s in summaries),
        failed=sum(s.failed for s in summaries),
        info=sum(s.info for s in summaries),
        findings=tuple(f for s in summaries for f in s.findings)[:FINDINGS_KEPT],
    )


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
