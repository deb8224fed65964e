"""Unchanged polls per second served by one replica and by two on one PostgreSQL.

    .venv/bin/python bench/replicas.py [--sites 2000] [--clients 100] [--seconds 10]

A synthetic fleet (bench/synthetic.py) on a throwaway PostgreSQL server (the one the tests
start); ``--clients`` agents poll ``GET /v1/desired`` with a matching ``If-None-Match`` and
no wait, keep-alive, for ``--seconds``: first all against one replica, then half against
each of two replicas (a load generator process per replica). Prints requests/s, the ratio,
and the CPU each process used: the machine's cores are shared by the replicas, PostgreSQL
and the load generators, which is the ceiling this figure hits.
"""

from __future__ import annotations

import argparse
import json
import os
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
)
from bench.synthetic import FLEET, commit, fleet_files  # noqa: E402
from tests.service.postgres import start_postgres  # noqa: E402

TARGET = 1.6


def rate(servers: list[Server], tokens: dict[str, str], clients: int, seconds: float,
         workdir: Path) -> tuple[float, list[float]]:  # fmt: skip
    """Requests/s of ``clients`` pollers split across ``servers``, and each load
    generator's CPU seconds."""
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
    return sum(d["requests"] / d["seconds"] for d in done), cpu


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
        one, gen_cpu = rate([first], tokens, args.clients, args.seconds, workdir)
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
        two, gen_cpu = rate(servers, tokens, args.clients, args.seconds, workdir)
        after = [s.cpu_seconds() for s in servers]
        used = [sum(a) - sum(b) for a, b in zip(after, before, strict=True)]
        print(
            f"two replicas: {two:,.0f} unchanged polls/s ({args.clients // 2} clients each); "
            f"replica CPU {', '.join(f'{u:.1f} s' for u in used)}, load generators "
            f"{', '.join(f'{c:.1f} s' for c in gen_cpu)} in {args.seconds:.0f} s"
        )
        ratio = two / one
        verdict = "met" if ratio >= TARGET else "MISSED"
        print(f"ratio two/one: {ratio:.2f} (target >= {TARGET}): {verdict}")
        print(f"load average at the end: {load()}")
    finally:
        for server in servers:
            server.stop()
        pg.stop()


if __name__ == "__main__":
    main()
