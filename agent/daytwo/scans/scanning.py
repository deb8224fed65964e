"""Scans: the tool of a scan type run beside the cluster's nodes (one per node, one on the
cluster's network, or one with the control plane), its report read into a summary and kept."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from agent.clocks import Clock
from agent.contract import SCAN_TOOLS, ClusterState, ScanToolName
from agent.daytwo import DayTwoError
from agent.daytwo.history import History
from agent.daytwo.records import RunState, ScanResult, ScanSummary, Trigger
from agent.daytwo.scans import reports
from agent.drivers import DriverError, NodeMissing
from agent.drivers.nodes import NodeRef, Tool, ToolHost, ToolRun
from agent.errors import one_line

Target = Literal["each-node", "network", "control-plane"]
K3S_KUBECONFIG = "/var/lib/rancher/k3s/server/cred/admin.kubeconfig"


class ScanError(DayTwoError):
    """A scan that cannot even start (unknown type); the message is one line."""


@dataclass(frozen=True)
class ScanTool:
    tool: ScanToolName
    image: str
    argv: tuple[str, ...]
    target: Target
    version: str = ""  # the tool's, as its image is tagged
    benchmark: str = ""  # what it judges against when its report does not say


# how each tool runs; which tool runs which scan is the contract's SCAN_TOOLS
TOOLS: dict[ScanToolName, ScanTool] = {
    "kube-bench": ScanTool(
        tool="kube-bench",
        image="docker.io/aquasec/kube-bench:v0.9.4",
        argv=("kube-bench", "run", "--json", "--benchmark", "k3s-cis-1.7"),
        target="each-node",
        version="v0.9.4",
        benchmark="k3s-cis-1.7",
    ),
    "kube-hunter": ScanTool(
        tool="kube-hunter",
        image="docker.io/aquasec/kube-hunter:0.6.8",
        argv=("kube-hunter", "--remote", "{nodes}", "--report", "json", "--log", "none"),
        target="network",
        version="0.6.8",
    ),
    "sonobuoy": ScanTool(
        tool="sonobuoy",
        image="docker.io/sonobuoy/sonobuoy:v0.57.3",
        argv=(
            "sh",
            "-c",
            "sonobuoy run --kubeconfig {kubeconfig} --mode certified-conformance --wait >&2"
            " && out=$(sonobuoy retrieve --kubeconfig {kubeconfig} /tmp)"
            ' && sonobuoy results "$out"; code=$?;'
            " sonobuoy delete --kubeconfig {kubeconfig} --wait >&2; exit $code",
        ),
        target="control-plane",
        version="v0.57.3",
        benchmark="certified-conformance",
    ),
}


def default_tools() -> dict[str, ScanTool]:
    """Scan type -> the tool that runs it."""
    return {scan: TOOLS[tool] for scan, tool in SCAN_TOOLS.items()}


@dataclass(frozen=True)
class ScanSettings:
    tools: Mapping[str, ScanTool] = field(default_factory=default_tools)
    kubeconfig: str = K3S_KUBECONFIG  # inside the control-plane node's volumes
    timeout: float = 4 * 3600  # seconds one tool container may run (conformance is slow)


def run_scan(
    cluster: ClusterState,
    scan: str,
    *,
    host: ToolHost,
    history: History,
    clock: Clock,
    settings: ScanSettings,
    trigger: Trigger,
) -> ScanResult:
    """Run the scan of type ``scan`` against ``cluster`` and keep its result."""
    tool = settings.tools.get(scan)
    if tool is None:
        raise ScanError(f"unknown scan type {scan!r} (known: {', '.join(settings.tools)})")
    started = clock.now()
    summary: ScanSummary | None = None
    error: str | None = None
    try:
        summary = _scan(cluster, tool, host=host, settings=settings)
    except (DriverError, reports.ReportUnreadable) as e:
        error = one_line(e)
    result = ScanResult(
        cluster=cluster.name,
        scan=scan,
        tool=tool.tool,
        image=tool.image,
        trigger=trigger,
        state=RunState.FAILED if error else RunState.DONE,
        started_at=started,
        finished_at=clock.now(),
        summary=summary,
        error=error,
        version=tool.version,
        benchmark=(summary.benchmark if summary else "") or tool.benchmark,
    )
    history.record_scan(result)
    return result


def _scan(
    cluster: ClusterState, tool: ScanTool, *, host: ToolHost, settings: ScanSettings
) -> ScanSummary:
    nodes = host.cluster_nodes(cluster)
    name = f"edgefleet-{tool.tool}-{cluster.name}"[:50]
    if tool.target == "each-node":
        summaries = []
        for node in nodes:
            run = host.run_tool(
                Tool(
                    image=tool.image,
                    argv=_argv(tool.argv, nodes, node=node.node, kubeconfig=settings.kubeconfig),
                    network_mode="none",
                    pid_mode=f"container:{node.container}",
                    volumes_from=(f"{node.container}:ro",),
                ),
                name=name,
                timeout=settings.timeout,
            )
            summaries.append(_read(tool, run, node=node.node))
        return reports.merge(summaries)
    if tool.target == "network":
        run = host.run_tool(
            Tool(
                image=tool.image,
                argv=_argv(
                    tool.argv, host.addressed(nodes), node="", kubeconfig=settings.kubeconfig
                ),
                network=host.network(cluster.name),
            ),
            name=name,
            timeout=settings.timeout,
        )
        return _read(tool, run, node="")
    control = next((n for n in nodes if n.role == "control-plane"), None)
    if control is None:
        raise NodeMissing(f"cluster {cluster.name} has no control-plane node on this appliance")
    run = host.run_tool(
        Tool(
            image=tool.image,
            argv=_argv(tool.argv, nodes, node=control.node, kubeconfig=settings.kubeconfig),
            network_mode=f"container:{control.container}",
            volumes_from=(f"{control.container}:ro",),
        ),
        name=name,
        timeout=settings.timeout,
    )
    return _read(tool, run, node=control.node)


def _read(tool: ScanTool, run: ToolRun, *, node: str) -> ScanSummary:
    try:
        if tool.tool == "kube-bench":
            return reports.kube_bench(run.stdout, node=node)
        if tool.tool == "kube-hunter":
            return reports.kube_hunter(run.stdout)
        return reports.sonobuoy(run.stdout)
    except reports.ReportUnreadable as e:
        said = one_line(run.stderr.strip().splitlines()[-1]) if run.stderr.strip() else ""
        where = f" on {node}" if node else ""
        raise reports.ReportUnreadable(
            f"{tool.tool}{where} exited {run.code}: {e}" + (f" ({said})" if said else "")
        ) from e


def _argv(
    argv: Sequence[str], nodes: Sequence[NodeRef], *, node: str, kubeconfig: str
) -> tuple[str, ...]:
    out: list[str] = []
    for item in argv:
        if item == "{nodes}":
            out.extend(n.reachable_as for n in nodes)
        else:
            out.append(item.replace("{node}", node).replace("{kubeconfig}", kubeconfig))
    return tuple(out)
