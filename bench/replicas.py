"""Unchanged polls per second served by one replica and by two on one PostgreSQL.

    .venv/bin/python bench/replicas.py [--sites 2000] [--clients 100] [--seconds 10]

A synthetic fleet (bench/synthetic.py) on a throwaway PostgreSQL server (the one the tests
start); ``--clients`` agents poll ``GET /v1/desired`` with a matching ``If-None-Match`` and
no wait, keep-alive, for ``--seconds``: first all against one replica, then half against
each of two replicas (a load generator process per replica). Prints requests/s, the ratio,
and the CPU each process used: the machine's cores are shared by the replicas, PostgreSQL
and the load generators, which is the ceiling this figure hits. Where wrk is installed
(``apt-get install wrk``), the same is measured again with one wrk process per replica,
which leaves the cores to the replicas; the verdict is on that figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pygit2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve import (  # noqa: E402
    OPERATOR,
    Loadgen,
    Server,
    bearer,
    canaries,
    load,
    release_first_state,
    wait_published,
    wrk_command,
    wrk_figures,
    wrk_script,
)
from bench.synthetic import FLEET, commit, fleet_files  # noqa: E402
from tests.service.postgres import start_postgres  # noqa: E402

TARGET = 1.6


def rate(servers: list[Server], tokens: dict[str, str], clients: int, seconds: float,
         workdir: Path) -> tuple[float, list[float], list[list[str]]]:  # fmt: skip
    """Requests/s of ``clients`` pollers split across ``servers``, each load generator's CPU
    seconds, and the (token, ETag) pairs they polled with."""
    names = list(tokens)[:clients]
    share = len(names) // len(servers)
    gens = []
    for i, server in enumerate(servers):
        part = workdir / f"tokens-{len(servers)}-{i}.json"
        part.write_text(json.dumps({n: tokens[n] for n in names[i * share : (i + 1) * share]}))
        gens.append(Loadgen("rate", "--port", str(server.port), "--tokens", str(part),
                            "--clients", str(share), "--seconds", str(seconds)))  # fmt: skip
    done = [g.expect("rate", seconds + 120) for g in gens]
    cpu = [g.finish() for g in gens]
    for d in done:
        if d["errors"] or set(d["statuses"]) != {"304"}:
            print(f"   answers {d['statuses']}, errors {d['errors']}")
    pairs = [pair for d in done for pair in d["pairs"]]
    return sum(d["requests"] / d["seconds"] for d in done), cpu, pairs


def wrk_rate(
    wrk: str, servers: list[Server], pairs: list[list[str]], seconds: float, workdir: Path
) -> tuple[float, list[float]]:
    """Requests/s of one wrk process per server (one thread each), the pairs split evenly,
    and each server's CPU seconds meanwhile."""
    share = len(pairs) // len(servers)
    before = [sum(s.cpu_seconds()) for s in servers]
    runs = []
    for i, server in enumerate(servers):
        script = wrk_script(
            workdir / f"wrk-{len(servers)}-{i}.lua", pairs[i * share : (i + 1) * share]
        )
        command = wrk_command(wrk, script, server.url, clients=share, seconds=seconds, threads=1)
        runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
    outs = [run.communicate(timeout=seconds + 60)[0] for run in runs]
    used = [sum(s.cpu_seconds()) - b for s, b in zip(servers, before, strict=True)]
    figures = [wrk_figures(out) for out in outs]
    for out, found in zip(outs, figures, strict=True):
        if found is None or "bad" in found or "errors" in found:
            print(f"   wrk: {found or 'no result'}\n{out}")
    return sum(float(f["rps"]) for f in figures if f is not None), used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="edgefleet-replicas-bench-"))
    print(f"{os.cpu_count()} cores shared by the replicas, PostgreSQL and the load generators")
    print(f"load average at start: {load()}")
    pg = start_postgres()
    servers: list[Server] = []
    try:
        db = pg.url(pg.create_database())
        path = workdir / "fleet.git"
        files = fleet_files(args.sites)
        files["fleet.yaml"] = FLEET.replace("    soak: 30m\n", "    soak: 0s\n")
        commit(pygit2.init_repository(str(path), bare=True, initial_head="main"), files, "fleet")
        first = Server(path, workdir, "replica-1", db)
        servers.append(first)
        first.wait_healthy(120)
        with httpx.Client(base_url=first.url, timeout=120, headers=bearer(OPERATOR)) as http:
            wait_published(http, "site-00000", 600)
        first_wave = sorted(canaries(files))
        rest = [
            Path(p).stem for p in files if "/appliances/" in p and Path(p).stem not in first_wave
        ]
        appliances = (first_wave + rest)[: max(args.clients, len(first_wave))]
        (workdir / "appliances.json").write_text(json.dumps(appliances))
        gen = Loadgen("register", "--port", str(first.port), "--bootstrap-file",
                      str(workdir / "bootstrap-token"), "--appliances",
                      str(workdir / "appliances.json"), "--tokens-out",
                      str(workdir / "tokens.json"))  # fmt: skip
        gen.expect("registered", 300)
        gen.finish()
        tokens: dict[str, str] = json.loads((workdir / "tokens.json").read_text())
        release_first_state(first.url, tokens, set(first_wave))
        with httpx.Client(base_url=first.url, timeout=120, headers=bearer(OPERATOR)) as http:
            wait_published(http, f"site-{args.sites - 1:05d}", 600)
        print(f"{args.sites} sites on PostgreSQL; {len(tokens)} agents registered")
        cpu0 = first.cpu_seconds()
        one, gen_cpu, pairs = rate([first], tokens, args.clients, args.seconds, workdir)
        cpu1 = first.cpu_seconds()
        print(
            f"one replica:  {one:,.0f} unchanged polls/s ({args.clients} clients); replica CPU "
            f"{sum(cpu1) - sum(cpu0):.1f} s, load generator CPU {gen_cpu[0]:.1f} s in "
            f"{args.seconds:.0f} s"
        )
        second = Server(path, workdir, "replica-2", db)
        servers.append(second)
        second.wait_healthy(120)
        time.sleep(2)
        before = [s.cpu_seconds() for s in servers]
        two, gen_cpu, _ = rate(servers, tokens, args.clients, args.seconds, workdir)
        after = [s.cpu_seconds() for s in servers]
        used = [sum(a) - sum(b) for a, b in zip(after, before, strict=True)]
        print(
            f"two replicas: {two:,.0f} unchanged polls/s ({args.clients // 2} clients each); "
            f"replica CPU {', '.join(f'{u:.1f} s' for u in used)}, load generators "
            f"{', '.join(f'{c:.1f} s' for c in gen_cpu)} in {args.seconds:.0f} s"
        )
        ratio = two / one
        print(f"ratio two/one with the Python load generators: {ratio:.2f}")
        wrk = shutil.which("wrk")
        if wrk is None:
            print("wrk: not installed (apt-get install -y wrk): no second measurement")
        else:
            # wrk spends a fraction of the Python generator's CPU per request: the cores go
            # to the replicas, which is what this figure is about
            wrk_one, used_one = wrk_rate(wrk, [first], pairs, args.seconds, workdir)
            wrk_two, used_two = wrk_rate(wrk, servers, pairs, args.seconds, workdir)
            print(
                f"wrk, one process of one thread per replica: one replica {wrk_one:,.0f}/s "
                f"(replica CPU {used_one[0]:.1f} s), two {wrk_two:,.0f}/s (replica CPU "
                f"{', '.join(f'{u:.1f} s' for u in used_two)}) in {args.seconds:.0f} s"
            )
            ratio = wrk_two / wrk_one
            print(f"ratio two/one with wrk: {ratio:.2f}")
        verdict = "met" if ratio >= TARGET else "MISSED"
        print(f"ratio two/one (wrk where installed): {ratio:.2f} (target >= {TARGET}): {verdict}")
        print(f"load average at the end: {load()}")
    finally:
        for server in servers:
            server.stop()
        pg.stop()


if __name__ == "__main__":
    main()
