"""The example fleet's pull-request workflow, run as CI would run its edgefleet steps: the
validate and plan steps' shell scripts over a pull request's git history."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

from tests.integration.conftest import git

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "fleet-example/.github/workflows/edgefleet.yml"


def steps() -> dict[str, dict[str, object]]:
    workflow = YAML(typ="safe").load(WORKFLOW.read_text())
    return {s["name"]: s for s in workflow["jobs"]["plan"]["steps"] if "name" in s}


def run_step(step: dict[str, object], cwd: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp),
        "GITHUB_OUTPUT": str(tmp / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp / "summary"),
        "BASE": "main",  # origin/${{ github.base_ref }} in a clone of the pull request
    }
    return subprocess.run(
        ["bash", "-e", "-c", str(step["run"])],
        cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_pull_request_workflow_validates_and_plans(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet"
    shutil.copytree(ROOT / "fleet-example", fleet)
    git(fleet, "init", "-q", "-b", "main")
    git(fleet, "add", "-A")
    git(fleet, "commit", "-qm", "the fleet")
    git(fleet, "checkout", "-qb", "snapshots")
    profile = fleet / "profiles/store-full-1.2.0.yaml"
    profile.write_text(profile.read_text().replace("retention: 4", "retention: 6"))
    git(fleet, "commit", "-qam", "stores keep more etcd snapshots")
    found = steps()
    validate = run_step(found["validate"], fleet, tmp_path)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    plan = run_step(found["plan"], fleet, tmp_path)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    comment = (fleet / "plan.md").read_text()
    assert comment.startswith("### edgefleet plan\n") and len(comment) < 60_000
    assert (fleet / "plan-full.md").read_text().startswith("### edgefleet plan\n")
    assert (tmp_path / "output").read_text() == "changes=true\n"
    assert (tmp_path / "summary").read_text() == comment
    assert found["keep the whole plan"]["with"] == {
        "name": "edgefleet-plan",
        "path": "plan-full.md",
    }
    # nothing changes: the step passes and says so
    git(fleet, "checkout", "-q", "main")
    plan = run_step(found["plan"], fleet, tmp_path)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert (tmp_path / "output").read_text().endswith("changes=false\n")
