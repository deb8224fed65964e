"""Recording releases in the store (the step between a reconcile and the first notified agent);
prints the time per release and per site.

    .venv/bin/python bench/release.py [--sites 1000 10000] [--workdir DIR] [--profile]

For each fleet size, one appliance per site, SQLite in the work folder:
1. first: every site new (every document and row written);
2. all change: a commit that changes every site's manifests;
3. one changes: a commit that changes one site;
4. wave opens: a commit that changes every site, 1% of them canaries; once every canary
   reported it applied and healthy, the rollout tick that opens the next wave (the step
   between the canaries' reports and the rest of the fleet's agents being woken);
5. mid-wave: half of that wave's appliances report it applied and healthy, then the tick
   their reports ask for (one of those that run while the rest of the wave is answered).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.contract import StatusReport  # noqa: E402
from reconciler.rollout import Release, RolloutService  # noqa: E402
from reconciler.store import Store  # noqa: E402
from tests.service.fleets import release, revision, site  # noqa: E402


def timed(service: RolloutService, rel: Release, profile: bool) -> float:
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    assert service.record_release(rel)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - start
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(18)
    return elapsed


def healthy(service: RolloutService, rel: Release, sites: Sequence[str]) -> None:
    """Each appliance of ``sites`` reports its state of ``rel`` applied and healthy, written
    together as the API writes a wave's reports; the tick they ask for is the one timed
    (one each, as ``accept_report`` would run, is ten thousand ticks)."""
    written = []
    for name in sites:
        appliance, state = next(iter(rel.sites[name].states.items()))
        report = {"appliedDigest": state.digest, "health": "healthy", "clusters": [
            {"name": c.name, "phase": "Running"} for c in state.clusters
        ]}  # fmt: skip
        written.append(service.report_later(appliance, StatusReport.model_validate(report)))
    for future in written:
        future.result(timeout=600)


def timed_tick(service: RolloutService, profile: bool) -> float:
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    service.tick()
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - start
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return elapsed


def wave_opens(service: RolloutService, sites: int, profile: bool) -> tuple[float, float]:
    """The tick opening the wave after the canaries, and one halfway through that wave."""
    specs = [site(f"s{i:05d}", ring="canary" if i % 100 == 0 else "general") for i in range(sites)]
    rel = release(revision(f"{sites}-4"), specs, manifest="v4")
    assert service.record_release(rel)
    healthy(service, rel, [s.name for s in specs if s.labels["ring"] == "canary"])
    opening = timed_tick(service, profile)
    with service.store.read() as tx:
        served = sum(a.served_revision == rel.revision for a in tx.assignments.all())
    assert served == sites, f"the next wave did not open: {served} of {sites} served"
    healthy(service, rel, [s.name for s in specs if s.labels["ring"] != "canary"][::2])
    return opening, timed_tick(service, profile)


def run(sites: int, workdir: Path, profile: bool) -> None:
    specs = [site(f"s{i:05d}") for i in range(sites)]
    path = workdir / f"release-{sites}.sqlite"
    for suffix in ("", "-wal", "-shm"):  # every run starts from an empty store
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = Store(f"sqlite:///{path}")
    service = RolloutService(store=store)
    steps = [
        ("first", release(revision(f"{sites}-1"), specs, manifest="v1")),
        ("all change", release(revision(f"{sites}-2"), specs, manifest="v2")),
        (
            "one changes",
            release(revision(f"{sites}-3"), specs, manifest="v2", manifests={"s00000": "v3"}),
        ),
    ]
    for name, rel in steps:
        elapsed = timed(service, rel, profile and name == "all change")
        print(
            f"{sites:>6} sites  {name:<12} {elapsed:7.2f} s"
            f"  ({elapsed / sites * 1e6:7.0f} µs per site)"
        )
    opening, midway = wave_opens(service, sites, profile)
    print(
        f"{sites:>6} sites  {'wave opens':<12} {opening:7.2f} s"
        f"  ({opening / sites * 1e6:7.0f} µs per site): the tick releasing 99% of the fleet"
    )
    print(
        f"{sites:>6} sites  {'mid-wave':<12} {midway:7.2f} s"
        f"  ({midway / sites * 1e6:7.0f} µs per site): a tick once half of that wave reported"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgefleet-bench-") as scratch:
        workdir = args.workdir or Path(scratch)
        for sites in args.sites:
            run(sites, workdir, args.profile)


if __name__ == "__main__":
    main()
