"""An apply that stops dead at a chosen step, for the crash test to ``kill -9``.

Run as ``python -m tests.libvirt.interrupted``: applies a state file through the libvirt
driver on the given URI and, when the given step reaches the given stage, writes the
marker file and waits to be killed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from agent.apply.admission import parse_state
from agent.apply.applying import apply_state
from agent.apply.inventory import Inventory
from agent.apply.passes import Progress
from agent.clocks import SystemClock
from agent.drivers.libvirt import LibvirtDriver, LibvirtSettings, connect


def main() -> None:
    parser = argparse.ArgumentParser()
    for option in ("--state", "--data-dir", "--uri", "--domain-type"):
        parser.add_argument(option, required=True)
    parser.add_argument("--pause-at", required=True, help="title of the step")
    parser.add_argument("--stage", required=True)
    parser.add_argument("--marker", type=Path, required=True)
    args = parser.parse_args()

    def pause(progress: Progress) -> None:
        if progress.title == args.pause_at and progress.stage == args.stage:
            args.marker.write_text(f"{progress.title} {progress.stage}\n")
            time.sleep(600)

    connection = connect(args.uri)
    settings = LibvirtSettings(domain_type=args.domain_type, cpu_mode=None, cpu_ratio=8.0)
    with Inventory.open(Path(args.data_dir)) as inventory:
        apply_state(
            parse_state(Path(args.state).read_bytes()),
            driver=LibvirtDriver(connection=connection, settings=settings),
            inventory=inventory,
            clock=SystemClock(),
            on_progress=pause,
        )


if __name__ == "__main__":
    main()
