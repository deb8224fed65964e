"""An apply that stops dead at a chosen step, for the crash tests to ``kill -9``.

Run as ``python -m tests.agent.interrupted``: applies a state file through the Docker
driver and, when the given step reaches the given stage (``intent``: journaled, nothing done
yet; ``created``: a node's container exists, not started), writes the marker file and waits
to be killed.
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
from agent.drivers.docker import DockerDriver, DockerSettings, connect


def main() -> None:
    parser = argparse.ArgumentParser()
    for option in ("--state", "--data-dir", "--docker-url", "--image", "--run-label"):
        parser.add_argument(option, required=True)
    parser.add_argument("--pause-at", required=True, help="title of the step")
    parser.add_argument("--stage", required=True)
    parser.add_argument("--marker", type=Path, required=True)
    args = parser.parse_args()
    key, _, value = args.run_label.partition("=")

    def pause(progress: Progress) -> None:
        if progress.title == args.pause_at and progress.stage == args.stage:
            args.marker.write_text(f"{progress.title} {progress.stage}\n")
            time.sleep(600)

    client = connect(args.docker_url)
    settings = DockerSettings(
        default_image=args.image,
        server_command=None,
        agent_command=None,
        privileged=False,
        pull="never",
        extra_labels={key: value},
    )
    with Inventory.open(Path(args.data_dir)) as inventory:
        apply_state(
            parse_state(Path(args.state).read_bytes()),
            driver=DockerDriver(client=client, settings=settings),
            inventory=inventory,
            clock=SystemClock(),
            on_progress=pause,
        )


if __name__ == "__main__":
    main()
