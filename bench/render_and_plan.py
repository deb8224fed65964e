"""Full render of synthetic fleets and plan of a one-site change; prints figures and ratios.

    .venv/bin/python bench/render_and_plan.py [--sites 1000 10000] [--workdir DIR]

Full render = load + validate + render every site of a revision: on every core (forked
workers beside this process parse the site files and render, as ``render`` and the
reconciler do past 2,000 files and 400 sites) and, for comparison, on one core alone.
Plan = the one-site change between two commits of the largest fleet, in this process and
as a command.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serve import everyone_changes  # noqa: E402
from bench.synthetic import commit, create, fleet_files, write_tree  # noqa: E402
from reconciler.cli.common import builtin_packs  # noqa: E402
from reconciler.forking import workers  # noqa: E402
from reconciler.loading import ParseCache  # noqa: E402
from reconciler.planning import make_plan  # noqa: E402
from reconciler.rendering import Renderer, render_sites  # noqa: E402
from reconciler.sources import GitRepository  # noqa: E402
from reconciler.validation import check_repository  # noqa: E402


def full_render(path: Path, processes: int) -> tuple[float, float, int]:
    """Seconds to load and validate, seconds to render, appliances rendered; on one core,
    this process is held to one while it loads and renders."""
    cores = os.sched_getaffinity(0)
    if processes == 1:
        os.sched_setaffinity(0, {min(cores)})
    try:
        return _full_render(path, processes)
    finally:
        os.sched_setaffinity(0, cores)


def _full_render(path: Path, processes: int) -> tuple[float, float, int]:
    start = time.perf_counter()
    tree = GitRepository(path).tree("main")
    checked = check_repository(tree, builtin=builtin_packs())
    assert not checked.diagnostics, checked.diagnostics[:3]
    loaded = time.perf_counter()
    states = render_sites(
        checked.repo,
        checked.registry,
        revision=tree.commit,
        sites=sorted(checked.repo.sites),
        renderer=Renderer(),
        processes=processes,
    )
    rendered = time.perf_counter()
    return loaded - start, rendered - loaded, sum(len(s) for s in states.values())


def fleet_wide_change(path: Path, sites: int) -> tuple[float, float, float, float]:
    """Load and render ``main``, then a commit changing one manifest of every site's profile
    on the same renderer and parse cache, as the reconciler does: seconds to load and to
    render, each time. The commit is left on a branch of its own."""
    cache: ParseCache = {}
    renderer = Renderer()
    repo = pygit2.Repository(str(path))
    files = fleet_files(sites)
    if "refs/heads/everyone" not in repo.references:
        signature = pygit2.Signature("bench", "bench@example.test", 1_700_000_000, 0)
        first = repo.revparse_single("main").peel(pygit2.Commit)
        while first.parents:  # the fleet as created, whatever plan commits on top of it
            first = first.parents[0]
        tree = write_tree(repo, everyone_changes(files))
        message = "every profile: one manifest"
        repo.create_commit("refs/heads/everyone", signature, signature, message, tree, [first.id])
    figures: list[float] = []
    for ref in ("main", "everyone"):
        start = time.perf_counter()
        tree = GitRepository(path).tree(ref)
        checked = check_repository(tree, builtin=builtin_packs(), cache=cache)
        loaded = time.perf_counter()
        render_sites(
            checked.repo, checked.registry, revision=tree.commit,
            sites=sorted(checked.repo.sites), renderer=renderer,
        )  # fmt: skip
        figures += [loaded - start, time.perf_counter() - loaded]
    return figures[0], figures[1], figures[2], figures[3]


def one_site_change(path: Path, sites: int) -> None:
    repo = pygit2.Repository(str(path))
    files = fleet_files(sites)
    site = f"sites/site-{sites // 2:05d}/clusters/site-{sites // 2:05d}-store.yaml"
    files[site] = files[site].replace('schedule: "30 2 * * *"', 'schedule: "45 2 * * *"')
    commit(repo, files, "one store moves its backup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="edgefleet-bench-"))
    renders: dict[int, float] = {}
    for sites in args.sites:
        path = workdir / f"fleet-{sites}.git"
        if not path.exists():
            create(path, sites)
        cores = workers()
        for processes in (cores, 1):
            load, render, appliances = full_render(path, processes)
            elapsed = load + render
            if processes == cores:
                renders[sites] = elapsed
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"full render, {sites} sites ({appliances} appliances), on "
                f"{processes} core{'s' if processes > 1 else ''}: {elapsed:.1f} s "
                f"(load and validate {load:.1f} s, render {render:.1f} s), "
                f"{sites / elapsed:.0f} sites/s, peak RSS so far {rss:.0f} MiB"
            )
    largest = max(args.sites)
    path = workdir / f"fleet-{largest}.git"
    load, render, reload, rerender = fleet_wide_change(path, largest)
    print(
        f"a commit changing one manifest of every profile, {largest} sites, on the same "
        f"renderer: load and validate {load:.1f} s then {reload:.1f} s (parse cache), render "
        f"{render:.1f} s then {rerender:.1f} s (outputs reused): {render / rerender:.1f}x"
    )
    if GitRepository(path).resolve("main").parents == []:
        one_site_change(path, largest)
    start = time.perf_counter()
    plan = make_plan(GitRepository(path), "main~1", "main", builtin=builtin_packs())
    in_process = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", str(path), "--base", "main~1", "--head=main"],
        check=True,
        capture_output=True,
    )
    command = time.perf_counter() - start
    print(f"plan of a one-site change in {largest} sites: {plan.summary}")
    print(
        f"  in process {in_process * 1000:.0f} ms ({plan.rendered_sites} sites rendered); "
        f"as a command {command * 1000:.0f} ms including interpreter start"
    )
    print(
        f"  full render / plan: {renders[largest] / in_process:.0f}x in process, "
        f"{renders[largest] / command:.0f}x as a command"
    )


if __name__ == "__main__":
    main()
