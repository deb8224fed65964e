"""The real ``edgefleet serve`` under hostile clients: event floods stay within one appliance's
quota, an appliance holds at most two long-polls, silent and slow connections are closed, the
number of connections is capped, a 50 MB body is refused, and what agents send reaches the
``edgefleet status`` terminal with its control characters escaped."""

from __future__ import annotations

import socket
import string
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.store import Store
from reconciler.store.events import RETENTION
from tests.service.agents import Agent
from tests.support.fleet import FleetFiles, write_base_fleet
from tests.support.hostile import (
    BOOTSTRAP,
    Served,
    edgefleet,
    free_port,
    init_repository,
    peak_mib,
    run_measured,
)
from tests.support.operators import VIEWER_TOKEN


def agent(served: Served, appliance: str) -> Agent:
    found = Agent(served.url, appliance, bootstrap=BOOTSTRAP)
    assert found.register().status_code == 200
    return found


def test_one_appliance_flooding_events_erases_no_other_history(served: Served) -> None:
    served.start()
    noisy, quiet = agent(served, "store-1-a"), agent(served, "restaurant-7-a")
    assert quiet.report(quiet.digest(), cluster="pos", events=[
        {"key": "q1", "level": "warning", "message": "the quiet one's disk is filling"}
    ]).status_code == 202  # fmt: skip

    for report in range(80):
        events = [{"level": "info", "message": f"flood {report}-{i}"} for i in range(256)]
        assert noisy.report(noisy.digest(), cluster="pos", events=events).status_code == 202

    store = Store(f"sqlite:///{served.work / 'reconciler.db'}")
    try:
        with store.read() as tx:
            flood = tx.events.recent(appliance="store-1-a", limit=100_000)
            quiet_site = tx.events.recent(site="restaurant-7", limit=100_000)
            fleet = tx.events.recent(fleet=True, limit=100_000)
    finally:
        store.close()
    reported = [e for e in flood if e.kind == "agent"]
    assert len(reported) == RETENTION.appliance
    assert reported[0].message == "flood 79-255"
    assert "the quiet one's disk is filling" in [e.message for e in quiet_site]
    kinds = {e.kind for e in quiet_site + flood}
    assert "agent-registered" in kinds  # security events are kept apart from the flood
    assert fleet  # and the rollout's own
    noisy.close()
    quiet.close()


def test_an_appliance_holds_at_most_two_long_polls(served: Served) -> None:
    served.start()
    polling = agent(served, "store-1-a")
    digest = polling.digest()
    answers: dict[int, tuple[int, float]] = {}

    def poll(n: int) -> None:
        with httpx.Client(base_url=served.url, timeout=60) as client:
            started = time.monotonic()
            answer = client.get(
                "/v1/desired",
                params={"wait": 30},
                headers={**polling.auth, "If-None-Match": f'"{digest}"'},
            )
            answers[n] = (answer.status_code, time.monotonic() - started)

    threads = []
    for n in range(250):  # one token, 250 long-polls at once
        thread = threading.Thread(target=poll, args=(n,), daemon=True)
        thread.start()
        threads.append(thread)
        time.sleep(0.005)
    deadline = time.monotonic() + 20
    while len(answers) < 248 and time.monotonic() < deadline:
        time.sleep(0.1)

    assert len(answers) == 248, f"{len(answers)} answered; at most 2 may still wait"
    assert {status for status, _ in answers.values()} == {304}
    assert max(seconds for _, seconds in answers.values()) < 20
    assert 0 in answers  # the oldest is answered first, not the newest
    assert polling.desired().status_code == 200  # a request that does not wait ends none
    time.sleep(1)
    assert len(answers) == 248
    polling.close()


def raw(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    return connection


def closed_after(connection: socket.socket, *, limit: float) -> float:
    """Seconds until the server closes ``connection`` (reading and discarding any answer)."""
    started = time.monotonic()
    connection.settimeout(limit)
    try:
        while connection.recv(4096):
            pass
    except TimeoutError:
        raise AssertionError(f"still open after {limit} s") from None
    finally:
        connection.close()
    return time.monotonic() - started


def test_silent_slow_and_idle_connections_are_closed(served: Served) -> None:
    served.start("--request-timeout", "1", "--idle-timeout", "1")

    silent = raw(served.port)
    assert closed_after(silent, limit=5) < 3

    slow = raw(served.port)
    started = time.monotonic()
    try:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            slow.sendall(bytes([byte]))
            time.sleep(0.1)
    except OSError:
        pass  # closed by the server mid-headers
    assert time.monotonic() - started < 4
    assert closed_after(slow, limit=5) < 3

    idle = raw(served.port)
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"200 OK" in idle.recv(4096)
    assert closed_after(idle, limit=5) < 3
    assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200


def test_connections_past_the_limit_are_answered_503(served: Served) -> None:
    served.start("--max-connections", "8", "--request-timeout", "3")
    held = [raw(served.port) for _ in range(8)]
    time.sleep(0.2)
    try:
        assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 503
    finally:
        for connection in held:
            connection.close()
    time.sleep(0.5)
    assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200


def test_a_50_mb_body_gets_413(served: Served) -> None:
    served.start()
    posting = agent(served, "store-1-a")
    before = peak_mib(served.pid)
    body = b'{"health": "healthy", "events": [' + b" " * (50 * 1024 * 1024) + b"]}"

    with httpx.Client(base_url=served.url, timeout=60) as client:
        try:
            answer = client.post(
                "/v1/status",
                content=body,
                headers={**posting.auth, "Content-Type": "application/json"},
            )
            status = answer.status_code
        except httpx.HTTPError:  # the server may close while the rest is still being sent
            status = 413
        assert status == 413
        register = client.post(
            "/v1/register",
            content=body,
            headers={"Authorization": f"Bearer {BOOTSTRAP}", "Content-Type": "application/json"},
        )
        assert register.status_code == 413
    assert peak_mib(served.pid) - before < 30  # the body was never held
    posting.close()


def test_control_characters_from_agents_are_escaped_on_the_terminal(
    served: Served, work: Path
) -> None:
    served.start()
    refusing = Agent(served.url, "store-1-a", bootstrap=BOOTSTRAP)
    assert refusing.register(agentVersion="1.0\x1b[2J").status_code == 422
    refusing.close()
    reporting = agent(served, "store-1-a")
    hostile = "disk \x1b]0;owned\x07\x1b[2J\rOK \u202egnp.exe"
    events = [{"key": "e1", "level": "error", "message": hostile}]
    assert reporting.report(reporting.digest(), cluster="pos", events=events).status_code == 202
    (work / "token").write_text(VIEWER_TOKEN)

    for extra in ([], ["--site", "store-1"]):
        done = run_measured(
            edgefleet("status", "--server", served.url, "--token-file", str(work / "token"),
                      *extra),
            work=work,
        )  # fmt: skip
        assert done.code == 0, done.err
        shown = done.out + done.err
        for control in ("\x1b", "\x07", "\r", "\u202e"):
            assert control not in shown
        if extra:
            assert "disk \\x1b]0;owned\\x07\\x1b[2J\\x0dOK \\u202egnp.exe" in done.out
    reporting.close()


IDS = st.text(alphabet=string.printable + "\x1b\u202e\x00é", max_size=80)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(appliance=IDS, version=IDS)
def test_any_appliance_id_and_version_is_registered_or_refused_never_a_500(
    hypothesis_served: Served, appliance: str, version: str
) -> None:
    registering = Agent(hypothesis_served.url, appliance, bootstrap=BOOTSTRAP)
    try:
        answer = registering.register(agentVersion=version)
    finally:
        registering.close()
    assert answer.status_code in (200, 409, 422), answer.text
    if answer.status_code == 200:
        assert appliance.isprintable() and version.isprintable()
        assert answer.json()["applianceId"] == appliance


@pytest.fixture(scope="module")
def hypothesis_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("ids")
    fleet = FleetFiles(root / "fleet")
    write_base_fleet(fleet)
    init_repository(fleet)
    work = root / "work"
    work.mkdir()
    found = Served(fleet, work, free_port())
    found.start()
    try:
        yield found
    finally:
        found.stop()
