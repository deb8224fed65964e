"""Plan of a profile change across a synthetic fleet: time and size of the markdown comment,
now and (with --compare-with REV) as the project's code at REV made it.

    .venv/bin/python bench/plan_at_scale.py [--sites 1000] [--runs 3] [--compare-with REV]

The change is the one of tests/integration/test_plan_at_scale.py: the store profile keeps
more etcd snapshots, which changes the nodes of every store and restaurant (95% of sites).
Times are the plan command's wall and CPU time, interpreter start included, the best of
``--runs``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.synthetic import commit, create, fleet_files  # noqa: E402

PROFILE = "profiles/store-full-1.2.0.yaml"


def profile_change(path: Path, sites: int) -> None:
    repo = create(path, sites)
    files = fleet_files(sites)
    files[PROFILE] = files[PROFILE].replace(
        "etcd-snapshot-retention: 4", "etcd-snapshot-retention: 6"
    )
    commit(repo, files, "stores keep more etcd snapshots")


def run_plan(code: Path, fleet: Path, runs: int) -> tuple[float, float, str]:
    """Best wall and CPU seconds of the plan command, and its markdown."""
    best = (float("inf"), float("inf"))
    markdown = ""
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "plan", str(fleet),
             "--base", "main~1", "--head", "main", "--format", "markdown"],
            cwd=code, capture_output=True, text=True, check=True,
            env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = min(best, (wall, cpu))
        markdown = done.stdout
    return best[0], best[1], markdown


def export(rev: str, into: Path) -> Path:
    """The project's files at ``rev`` (reconciler, agent, templates), to run as they were."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "reconciler", "agent", "templates"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def describe(name: str, wall: float, cpu: float, markdown: str) -> dict[str, object]:
    return {
        "code": name,
        "seconds": round(wall, 2),
        "cpuSeconds": round(cpu, 2),
        "markdownCharacters": len(markdown),
        "detailsBlocks": markdown.count("<details>"),
        "fitsAComment": len(markdown) <= 65_536,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compare-with", metavar="REV", help="also time the code at REV")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgefleet-bench-") as work:
        fleet = Path(work) / "fleet.git"
        profile_change(fleet, args.sites)
        rows = [describe("this tree", *run_plan(ROOT, fleet, args.runs))]
        if args.compare_with:
            old = export(args.compare_with, Path(work) / "before")
            rows.insert(0, describe(args.compare_with, *run_plan(old, fleet, args.runs)))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"plan of a profile change across {args.sites} sites (best of {args.runs}):")
    for row in rows:
        print(
            f"  {row['code']:>12}: {row['seconds']:.1f} s ({row['cpuSeconds']:.1f} s CPU), "
            f"markdown {row['markdownCharacters']:,} characters in {row['detailsBlocks']} "
            f"<details> blocks; fits a GitHub comment: {'yes' if row['fitsAComment'] else 'no'}"
        )


if __name__ == "__main__":
    main()
