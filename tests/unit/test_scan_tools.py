"""Which tool, at which version, runs each scan."""

from __future__ import annotations

from agent.daytwo.scans.scanning import TOOLS


def test_each_tools_image_is_tagged_with_the_version_its_results_name() -> None:
    assert {
        name: (tool.image.rpartition(":")[2], tool.version, tool.benchmark)
        for name, tool in TOOLS.items()
    } == {
        "kube-bench": ("v0.9.4", "v0.9.4", "k3s-cis-1.7"),
        "kube-hunter": ("0.6.8", "0.6.8", ""),
        "sonobuoy": ("v0.57.3", "v0.57.3", "certified-conformance"),
    }
