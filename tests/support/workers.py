"""How the suite splits over worker processes (pytest-xdist, ``--dist loadgroup``): the
tests that share the machine's daemons (the Docker engine, libvirtd, PostgreSQL) and what is
built on them run one after another on one worker, which starts each daemon once and stops
it at the end; every other module is a unit of its own, so its fixtures are made once."""

from __future__ import annotations

from collections.abc import Iterable

# session fixtures that start or build on a daemon of the machine (tests/conftest.py and the
# tiers' conftests); ``store_url`` reaches PostgreSQL without naming it
MACHINE_FIXTURES = frozenset(
    {
        "engine", "docker_client", "node_image", "daemon", "libvirt_host", "guest",
        "real_connection", "real_host", "images_built", "postgres", "store_url", "installed",
    }
)  # fmt: skip
MACHINE = "machine"


def group_of(nodeid: str, fixtures: Iterable[str]) -> str:
    """The worker group of the test ``nodeid`` that uses ``fixtures``."""
    if MACHINE_FIXTURES.intersection(fixtures):
        return MACHINE
    return nodeid.split("::", 1)[0]
