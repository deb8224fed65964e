"""A wave opening to many held agents costs no database read per agent: the new documents
are loaded in bulk before the long-polls wake, and each answers from memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import event

from tests.support.service import Harness

from .fleets import WAVES, digests, release, revision, site

STORES = [site(f"store-{n:03d}") for n in range(120)]
SITES = [site("canary-1", ring="canary"), *STORES]


@contextmanager
def statements(server: Harness) -> Iterator[list[str]]:
    """Every SQL statement the store runs inside the block."""
    seen: list[str] = []
    engine = server.store._engine  # noqa: SLF001 - counting what the store sends

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_wave_wakes_its_held_agents_without_a_read_each(server: Harness) -> None:
    first = release(revision("f1"), SITES, waves=WAVES)
    server.rollout.record_release(first)  # declared first: discovered ones are rate-limited
    agents = {a: server.agent(a) for s in SITES for a in s.appliances}
    for agent in agents.values():
        agent.apply()
    server.rollout.tick()
    second = release(revision("f2"), SITES, manifest="v2", waves=WAVES)
    server.rollout.record_release(second)
    old, new = digests(first), digests(second)
    # every store long-polls for a state newer than the one it runs
    answers: dict[str, httpx.Response] = {}

    def wait(appliance: str) -> None:
        answers[appliance] = agents[appliance].desired(etag=old[appliance], wait=30)

    waiting = [a for s in STORES for a in s.appliances]
    threads = [threading.Thread(target=wait, args=(a,)) for a in waiting]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while server.rollout.notifier.waiting() < len(waiting):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with statements(server) as seen:
        agents["canary-1-edge"].apply()  # the canary proves it: the last wave opens
        for thread in threads:
            thread.join(30)
    assert {a: r.json()["digest"] for a, r in answers.items()} == {a: new[a] for a in waiting}
    reads = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    # the report, the tick and one bulk read of the documents: not one read per agent
    assert len(reads) < 40, f"{len(reads)} reads for {len(waiting)} agents"
