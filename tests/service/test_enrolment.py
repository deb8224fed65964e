"""Enrolment on the real server, tried as an attacker holding the fleet's bootstrap token
would: a paired appliance is never taken over (409, and the real agent keeps working);
rotation needs the current token; an admin reset allows one registration; one-time
enrolment tokens register their appliance once and expire; discovered appliances are capped
and rate-limited per address; every refusal is a warning event."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reconciler.store import EventRecord
from tests.support.service import Harness

from .agents import BOOTSTRAP, Agent
from .fleets import digests, release, revision, site
from .serving import Served, args

SITES = [site("grocery-1", ring="canary"), site("store-2")]
REAL = "grocery-1-edge"


@pytest.fixture
def released(server: Harness) -> dict[str, str]:
    rel = release(revision("r1"), SITES)
    server.rollout.record_release(rel)
    return digests(rel)


def attacker(server: Harness, appliance: str = REAL, *, token: str = BOOTSTRAP) -> Agent:
    """Someone holding ``token`` (the bootstrap token, unless told), from another host."""
    found = Agent(server.base_url, appliance, bootstrap=token)
    server.agents.append(found)
    return found


def refusals(server: Harness, appliance: str | None = None) -> list[str]:
    with server.store.read() as tx:
        found = tx.events.recent(appliance=appliance, limit=500)
    return [e.message for e in reversed(found) if e.kind == "registration-refused"]


def events(server: Harness, appliance: str) -> list[EventRecord]:
    with server.store.read() as tx:
        return list(reversed(tx.events.recent(appliance=appliance, limit=500)))


def enroll(server: Harness, appliance: str, **body: Any) -> httpx.Response:
    return server.admin.post(f"/v1/appliances/{appliance}/enroll", json=body or None)


def test_a_takeover_with_the_bootstrap_token_is_refused_and_the_real_agent_keeps_working(
    server: Harness, released: dict[str, str]
) -> None:
    real = server.agent(REAL)
    thief = attacker(server)
    answer = thief.register(hostname="laptop", ip="10.66.6.6")
    assert answer.status_code == 409
    assert "token" not in answer.json()
    assert thief.token is None
    # the real agent is untouched: its state, its reports, its facts
    assert real.desired().json()["digest"] == released[REAL]
    real.report(released[REAL]).raise_for_status()
    (appliance,) = server.site("grocery-1")["appliances"]
    assert (appliance["hostname"], appliance["ip"]) == (f"{REAL}.local", "192.168.10.20")
    assert appliance["appliedDigest"] == released[REAL]
    # the attempt is a warning operators see on the site, naming where it came from
    (warning,) = [e for e in server.site("grocery-1")["events"] if e["level"] == "warning"]
    assert warning["message"].startswith(
        f"registration of {REAL} from laptop (127.0.0.1) refused: {REAL} is registered already"
    )


def test_the_attacker_gets_no_state_and_cannot_report(
    server: Harness, released: dict[str, str]
) -> None:
    server.agent(REAL)
    thief = attacker(server)
    assert thief.register().status_code == 409
    for token in (BOOTSTRAP, "made-up-token-0123456789abcdef"):
        headers = {"Authorization": f"Bearer {token}"}
        assert thief.http.get("/v1/desired", headers=headers).status_code == 401
        report = {"health": "healthy", "appliedDigest": released[REAL]}
        assert thief.http.post("/v1/status", json=report, headers=headers).status_code == 401


def test_an_agent_token_rotates_its_own_appliance_only(
    server: Harness, released: dict[str, str]
) -> None:
    mine = server.agent(REAL)
    other = server.agent("store-2-edge")
    thief = attacker(server, "store-2-edge", token=mine.token or "")
    answer = thief.register()
    assert answer.status_code == 403
    assert answer.json()["detail"] == (
        "an agent token rotates its own appliance's token only, not store-2-edge's"
    )
    assert mine.desired().status_code == 200
    assert other.desired().status_code == 404  # known: its wave has no state for it yet
    assert refusals(server, "store-2-edge")


def test_reset_allows_one_registration_and_drops_the_old_token(
    server: Harness, released: dict[str, str]
) -> None:
    lost = server.agent(REAL)  # the appliance's disk was replaced: this token is lost
    answer = server.admin.post(f"/v1/appliances/{REAL}/reset")
    assert answer.json() == {"applianceId": REAL, "registered": True, "by": "ada"}
    assert lost.desired().status_code == 401
    (appliance,) = server.site("grocery-1")["appliances"]
    assert appliance["status"] == "Unpaired"
    replaced = server.agent(REAL, register=False)
    assert replaced.register(hostname="new-box").status_code == 200
    assert replaced.desired().json()["digest"] == released[REAL]
    # once: the next one is refused again
    assert attacker(server).register().status_code == 409
    assert replaced.desired().status_code == 200
    pairing = {"agent-registered", "appliance-reset", "registration-refused"}
    kinds = [(e.kind, e.level) for e in events(server, REAL) if e.kind in pairing]
    assert kinds == [
        ("agent-registered", "info"),
        ("appliance-reset", "warning"),
        ("agent-registered", "info"),
        ("registration-refused", "warning"),
    ]
    reset = next(e for e in events(server, REAL) if e.kind == "appliance-reset")
    assert reset.message == (
        f"{REAL} reset by ada: its token no longer works; its next registration pairs it again"
    )


def test_a_reset_needs_an_admin(server: Harness, released: dict[str, str]) -> None:
    agent = server.agent(REAL)
    assert server.http.post(f"/v1/appliances/{REAL}/reset").status_code == 403
    assert httpx.post(f"{server.base_url}/v1/appliances/{REAL}/reset").status_code == 401
    assert agent.desired().status_code == 200


def test_an_enrolment_token_registers_its_appliance_once(
    server: Harness, released: dict[str, str]
) -> None:
    answer = enroll(server, REAL)
    assert answer.status_code == 200
    issued = answer.json()
    assert issued["applianceId"] == REAL and issued["declared"] is True
    assert issued["by"] == "ada"
    token = issued["token"]
    # bound to its ID: another appliance cannot use it, and that does not use it up
    assert attacker(server, "store-2-edge", token=token).register().status_code == 403
    agent = attacker(server, REAL, token=token)
    assert agent.register().status_code == 200
    assert agent.desired().json()["digest"] == released[REAL]
    # used up: not even after a reset
    server.admin.post(f"/v1/appliances/{REAL}/reset").raise_for_status()
    replay = attacker(server, REAL, token=token).register()
    assert replay.status_code == 401
    assert token not in replay.text
    issued_event = next(e for e in events(server, REAL) if e.kind == "enrolment-issued")
    assert issued_event.message.startswith(f"one-time enrolment token for {REAL} issued by ada")
    assert all(token not in e.message for e in events(server, REAL))


def test_an_enrolment_token_expires(server: Harness, released: dict[str, str]) -> None:
    token = enroll(server, REAL, ttlSeconds=3600).json()["token"]
    server.clock.advance(seconds=3601)
    answer = attacker(server, REAL, token=token).register()
    assert answer.status_code == 401
    assert answer.json()["detail"].startswith(f"the enrolment token of {REAL} expired at ")


def test_a_newer_enrolment_token_replaces_an_unused_one(
    server: Harness, released: dict[str, str]
) -> None:
    first = enroll(server, REAL).json()["token"]
    second = enroll(server, REAL).json()["token"]
    assert attacker(server, REAL, token=first).register().status_code == 401
    assert attacker(server, REAL, token=second).register().status_code == 200


def test_an_enrolment_token_does_not_take_a_paired_appliance_over(
    server: Harness, released: dict[str, str]
) -> None:
    real = server.agent(REAL)
    token = enroll(server, REAL).json()["token"]
    assert attacker(server, REAL, token=token).register().status_code == 409
    assert real.desired().status_code == 200
    server.admin.post(f"/v1/appliances/{REAL}/reset").raise_for_status()
    assert attacker(server, REAL, token=token).register().status_code == 200


@pytest.mark.parametrize("ttl", [0, 59, 31 * 86_400])
def test_enrolment_ttl_is_bounded(server: Harness, released: dict[str, str], ttl: int) -> None:
    assert enroll(server, REAL, ttlSeconds=ttl).status_code == 422


def test_without_a_bootstrap_token_only_enrolment_tokens_pair(
    server_with: Callable[..., Harness],
) -> None:
    server = server_with(bootstrap_token=None)
    server.rollout.record_release(release(revision("r1"), SITES))
    answer = attacker(server).register()
    assert answer.status_code == 401
    token = enroll(server, REAL).json()["token"]
    agent = attacker(server, REAL, token=token)
    assert agent.register().status_code == 200
    assert agent.rotate().status_code == 200  # rotation needs no bootstrap token either


def test_discovered_appliances_are_capped(server_with: Callable[..., Harness]) -> None:
    server = server_with(max_discovered=2)
    server.rollout.record_release(release(revision("r1"), SITES))
    for n in (1, 2):
        assert attacker(server, f"stranger-{n}").register().status_code == 200
    answer = attacker(server, "stranger-3").register()
    assert answer.status_code == 429
    assert answer.json()["detail"].startswith("2 discovered appliances are kept already")
    assert "retry-after" not in answer.headers
    assert server.agent(REAL).desired().status_code == 200  # declared ones still pair
    # a reset makes room
    server.admin.post("/v1/appliances/stranger-1/reset").raise_for_status()
    assert attacker(server, "stranger-3").register().status_code == 200
    assert sorted(d["id"] for d in server.fleet()["discovered"]) == ["stranger-2", "stranger-3"]


def test_registrations_are_limited_per_address(server_with: Callable[..., Harness]) -> None:
    server = server_with(registrations_per_minute=3)
    server.rollout.record_release(release(revision("r1"), SITES))
    for n in (1, 2, 3):
        assert attacker(server, f"stranger-{n}").register().status_code == 200
    answer = attacker(server, "stranger-4").register()
    assert answer.status_code == 429
    assert answer.json()["detail"] == "too many registrations from 127.0.0.1; retry in 20 s"
    assert answer.headers["retry-after"] == "20"
    # refusals count too, and past the rate one event a minute says so
    for _ in range(5):
        assert (
            attacker(server, REAL, token="guessed-token-0123456789").register().status_code == 429
        )
    # a declared appliance with a good token is never held up by the others of its address
    assert server.agent(REAL).desired().status_code == 200
    server.clock.advance(seconds=20)
    assert attacker(server, "stranger-4").register().status_code == 200
    throttled = [m for m in refusals(server) if "too many registrations" in m]
    assert len(throttled) == 1


@pytest.mark.parametrize(
    "attempt,status,reason",
    [
        ("bootstrap token, paired appliance", 409, "is registered already"),
        ("wrong token", 401, "not the bootstrap token, an unused enrolment token"),
        ("another agent's token", 403, "an agent token rotates its own appliance's token only"),
        ("enrolment token of another appliance", 403, "bound to another appliance"),
    ],
)
def test_every_refusal_is_a_warning_event(
    server: Harness, released: dict[str, str], attempt: str, status: int, reason: str
) -> None:
    server.agent(REAL)
    other = server.agent("store-2-edge")
    token = {
        "bootstrap token, paired appliance": BOOTSTRAP,
        "wrong token": "wrong-bootstrap-token-0123456789",
        "another agent's token": other.token or "",
        "enrolment token of another appliance": enroll(server, "store-2-edge").json()["token"],
    }[attempt]
    answer = attacker(server, REAL, token=token).register(hostname="intruder")
    assert answer.status_code == status
    (message,) = refusals(server, REAL)
    assert message.startswith(f"registration of {REAL} from intruder (127.0.0.1) refused: ")
    assert reason in message
    assert token not in message
    warnings = [e for e in server.site("grocery-1")["events"] if e["level"] == "warning"]
    assert [e["message"] for e in warnings] == [message]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--no-bootstrap-token", "--bootstrap-token-file", "{bootstrap}"], "exclude each other"),
        ([], "--bootstrap-token-file is required (or --no-bootstrap-token"),
        (["--bootstrap-token-file", "{bootstrap}", "--max-discovered", "0"], "--max-discovered"),
    ],
)
def test_serve_bootstrap_settings_are_checked(
    served: Served,  # noqa: F811
    flags: list[str],
    message: str,
) -> None:
    (served.work / "short").write_text("too-short")
    base = args(served)
    at = base.index("--bootstrap-token-file")
    files = {"bootstrap": served.work / "bootstrap", "short": served.work / "short"}
    flags = [f.format(**files) for f in flags]
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "serve", served.repo, *base[:at], *base[at + 2 :],
         *flags],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
