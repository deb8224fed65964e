"""Why the server's background work waits while a rollout decision runs: SQLite beside a
busy thread. Prints the figures and ratios.

    .venv/bin/python bench/convoy.py [--rows 10000] [--rounds 3]

Python's sqlite3 module lets go of the interpreter lock for every step of a statement: each
row an ``executemany`` writes, each row a query returns. Alone, taking the lock back is
free; beside a thread that keeps the interpreter busy (the documents made ahead of a wave,
an event loop answering thousands of agents), each step waits for that thread to hand the
lock over, which it does after the switch interval (5 ms by default). A decision writes and
reads tens of thousands of rows. This times the same writes and reads (an ``executemany``
updating every row, then a query reading them back) alone and beside a busy thread, for
several switch intervals.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import threading
import time


def rows_work(db: sqlite3.Connection, rows: int, rounds: int) -> float:
    """Seconds to update every row and read them all back, ``rounds`` times."""
    started = time.perf_counter()
    for n in range(rounds):
        values = [(f"v{n}-{i}", i, f"k{i}") for i in range(rows)]
        db.executemany("UPDATE t SET a = ?, b = ? WHERE k = ?", values)
        db.execute("SELECT * FROM t").fetchall()
    return time.perf_counter() - started


def beside_a_busy_thread(db: sqlite3.Connection, rows: int, rounds: int) -> float:
    stop = threading.Event()

    def busy() -> None:
        count = 0
        while not stop.is_set():
            count += 1

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    try:
        return rows_work(db, rows, rounds)
    finally:
        stop.set()
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, a TEXT, b INTEGER)")
    db.executemany("INSERT INTO t VALUES (?, ?, ?)", [(f"k{i}", "", i) for i in range(args.rows)])
    default = sys.getswitchinterval()
    print(
        f"{args.rounds} x (update {args.rows} rows with executemany, read them back); "
        f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}"
    )
    try:
        for interval in (default, 0.001, 0.0001):
            sys.setswitchinterval(interval)
            alone = rows_work(db, args.rows, args.rounds)
            busy = beside_a_busy_thread(db, args.rows, args.rounds)
            print(
                f"  switch interval {interval * 1000:g} ms: alone {alone:.3f} s, beside a busy "
                f"thread {busy:.3f} s ({busy / alone:.0f}x)"
            )
    finally:
        sys.setswitchinterval(default)


if __name__ == "__main__":
    main()
