"""The reconciler's API in a process of its own, for tests that kill it.

Stands in for ``edgefleet serve`` with two test doubles: the clock reads its time from
``WORKDIR/clock`` (seconds since the epoch, written by the test), and the push webhook
records the release stored in ``WORKDIR/releases/<after>.json``, as the reconcile loop
would after fetching that commit. Gates are re-evaluated every 50 ms.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from pydantic import TypeAdapter

from reconciler.api import PushEvent, create_app
from reconciler.rollout import Release, RolloutService
from reconciler.store import Store
from tests.support.operators import operator_tokens

from .agents import BOOTSTRAP

SECRET = "webhook-secret-for-tests"
RELEASES = TypeAdapter(Release)


def file_clock(path: Path) -> Callable[[], datetime]:
    def now() -> datetime:
        return datetime.fromtimestamp(float(path.read_text()), UTC)

    return now


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    clock = file_clock(args.workdir / "clock")
    store = Store(args.db)
    rollout = RolloutService(store=store, clock=clock)

    def on_push(event: PushEvent) -> None:
        source = args.workdir / "releases" / f"{event.after}.json"
        rollout.record_release(RELEASES.validate_python(json.loads(source.read_text())))

    app = create_app(
        store=store,
        rollout=rollout,
        clock=clock,
        bootstrap_token=BOOTSTRAP,
        webhook_secret=SECRET,
        on_push=on_push,
        tick_interval=0.05,
        operators=operator_tokens(),
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", ws="none")


def save_release(workdir: Path, release: Release) -> None:
    folder = workdir / "releases"
    folder.mkdir(exist_ok=True)
    (folder / f"{release.revision}.json").write_bytes(RELEASES.dump_json(release))


if __name__ == "__main__":
    main()
