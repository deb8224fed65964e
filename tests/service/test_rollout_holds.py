"""A held change stays held, on the real server: a newer commit never releases what the
canary has not proven, a halt outlives unrelated commits, and an admin pauses, resumes and
promotes through ``edgefleet rollout``; ``edgefleet status`` shows the failing sites and
the ``git revert`` that undoes them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from agent.contract import MaintenanceWindow
from tests.support.operators import ADMIN_TOKEN, VIEWER_TOKEN
from tests.support.service import Harness

from .agents import Agent
from .fleets import digests, release, revision, site

CANARY = site("grocery-1", ring="canary")
SITES = [CANARY, site("store-2"), site("store-3"), site("store-4")]
HOUR = 3600.0


def edgefleet(
    server: Harness, *args: str, token: str = ADMIN_TOKEN
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args, "--server", server.base_url],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "EDGEFLEET_TOKEN": token},
    )


def start(server: Harness) -> dict[str, Agent]:
    """Every site on r1, applied, healthy and proven (no soak)."""
    agents = {a: server.agent(a) for s in SITES for a in s.appliances}
    first = release(revision("r1"), SITES)
    server.rollout.record_release(first)
    for _ in range(3):
        for agent in agents.values():
            agent.apply()
        server.rollout.tick()
    assert served(agents) == digests(first)
    return agents


def served(agents: dict[str, Agent]) -> dict[str, str | None]:
    return {a: agent.digest() for a, agent in agents.items()}


def test_an_unrelated_commit_does_not_release_what_the_canary_has_not_proven(
    server: Harness,
) -> None:
    agents = start(server)
    old = digests(release(revision("r1"), SITES))
    # H changes the canary and a store of the last wave
    h = release(
        revision("H"), SITES, manifests={"grocery-1": "H", "store-4": "H"}, soak_seconds=HOUR
    )
    server.rollout.record_release(h)
    assert served(agents) == {**old, "grocery-1-edge": digests(h)["grocery-1-edge"]}
    # I, merged before the canary reported on H, touches only a third site
    i = release(
        revision("I"),
        SITES,
        manifests={"grocery-1": "H", "store-4": "H", "store-3": "ntp"},
        soak_seconds=HOUR,
    )
    server.rollout.record_release(i)
    server.clock.advance(minutes=5)
    server.rollout.tick()
    assert served(agents) == {**old, "grocery-1-edge": digests(i)["grocery-1-edge"]}
    sites = {s["name"]: s for s in server.fleet()["sites"]}
    assert sites["grocery-1"]["state"] == "rolling"
    assert sites["store-4"]["state"] == "pending"
    assert "grocery-1 (canary) is rolling" in sites["store-4"]["waiting"]
    # the canary runs H healthy; the soak is an hour from its first healthy report
    agents["grocery-1-edge"].apply()
    server.clock.advance(minutes=50)
    # yet another unrelated commit does not restart the canary's soak
    j = release(
        revision("J"),
        SITES,
        manifests={"grocery-1": "H", "store-4": "H", "store-3": "ntp", "store-2": "dns"},
        soak_seconds=HOUR,
    )
    server.rollout.record_release(j)
    agents["grocery-1-edge"].apply()
    assert served(agents)["store-4-edge"] == old["store-4-edge"]
    server.clock.advance(minutes=11)
    agents["grocery-1-edge"].apply()  # a heartbeat an hour after its first healthy report
    assert served(agents) == digests(j)


def test_a_halt_holds_across_commits_until_one_changes_every_failing_site(
    server: Harness,
) -> None:
    agents = start(server)
    old = digests(release(revision("r1"), SITES))
    broken = release(revision("broken"), SITES, manifests={"grocery-1": "bad", "store-4": "bad"})
    server.rollout.record_release(broken)
    agents["grocery-1-edge"].report(None, error=digests(broken)["grocery-1-edge"])
    assert server.fleet()["rollout"]["state"] == "halted"
    # a commit touching another site: still halted, nothing new released
    other = release(
        revision("other"), SITES, manifests={"grocery-1": "bad", "store-4": "bad", "store-3": "x"}
    )
    server.rollout.record_release(other)
    server.clock.advance(hours=2)
    server.rollout.tick()
    fleet = server.fleet()
    assert fleet["rollout"]["revision"] == other.revision
    assert fleet["rollout"]["state"] == "halted"
    assert served(agents) == {**old, "grocery-1-edge": digests(broken)["grocery-1-edge"]}
    (failure,) = fleet["rollout"]["failures"]
    assert failure["site"] == "grocery-1"
    assert "pulling image failed" in failure["error"]
    assert failure["revert"] == [f"git revert {broken.revision}"]
    shown = edgefleet(server, "status", token=VIEWER_TOKEN)
    assert shown.returncode == 0, shown.stderr
    assert f"undo with: git revert {broken.revision}" in shown.stdout
    assert "halted" in shown.stdout
    # the revert of the canary changes every failing site: the halt lifts, the canary goes
    # back at once, and the other sites' changes follow the waves
    reverted = release(
        revision("revert"), SITES, manifests={"grocery-1": "v1", "store-4": "bad", "store-3": "x"}
    )
    server.rollout.record_release(reverted)
    assert server.fleet()["rollout"]["state"] == "running"
    assert served(agents) == digests(reverted)


def test_an_admin_pauses_resumes_and_promotes(server: Harness) -> None:
    agents = start(server)
    old = digests(release(revision("r1"), SITES))
    paused = edgefleet(server, "rollout", "pause")
    assert paused.returncode == 0, paused.stderr
    assert "pause: done (by ada)" in paused.stdout
    second = release(revision("r2"), SITES, manifest="v2", soak_seconds=HOUR)
    server.rollout.record_release(second)
    assert served(agents) == old  # paused: not even the canary
    fleet = server.fleet()
    assert fleet["rollout"]["paused"] is True
    assert fleet["rollout"]["pausedBy"] == "ada"
    assert {s["name"]: s["state"] for s in fleet["sites"]}["grocery-1"] == "held (paused)"
    assert any(e["message"] == "rollout paused by ada" for e in fleet["events"])
    # a revert still goes while paused
    back = release(revision("r3"), SITES, soak_seconds=HOUR)
    server.rollout.record_release(back)
    assert served(agents) == old
    third = release(revision("r4"), SITES, manifest="v4", soak_seconds=HOUR)
    server.rollout.record_release(third)
    assert served(agents) == old
    resumed = edgefleet(server, "rollout", "resume")
    assert resumed.returncode == 0, resumed.stderr
    new = digests(third)
    assert served(agents) == {**old, "grocery-1-edge": new["grocery-1-edge"]}
    # promote opens the last wave now, without waiting for the canary's soak
    promoted = edgefleet(server, "rollout", "promote", "--wave", "everyone")
    assert promoted.returncode == 0, promoted.stderr
    assert served(agents) == new
    events = [e["message"] for e in server.fleet()["events"]]
    assert f"wave everyone of {third.revision[:7]} promoted by ada" in events
    assert any(m.startswith("rollout resumed by ada") for m in events)
    # promoting again: the wave is open already
    again = edgefleet(server, "rollout", "promote", "--wave", "everyone")
    assert again.returncode == 1
    assert "409" in again.stderr and "open already" in again.stderr


def test_resume_accepts_the_failures_that_halted_the_rollout(server: Harness) -> None:
    agents = start(server)
    second = release(revision("r2"), SITES, manifest="v2")
    server.rollout.record_release(second)
    agents["grocery-1-edge"].report(None, error=digests(second)["grocery-1-edge"])
    assert server.fleet()["rollout"]["state"] == "halted"
    # a viewer may not resume
    refused = edgefleet(server, "rollout", "resume", token=VIEWER_TOKEN)
    assert refused.returncode == 1
    assert "403" in refused.stderr
    assert edgefleet(server, "rollout", "resume").returncode == 0
    rollout = server.fleet()["rollout"]
    assert rollout["state"] == "running"
    assert rollout["accepted"] == ["grocery-1"]
    assert served(agents) == digests(second)


def test_rollout_commands_name_what_is_wrong(server: Harness, tmp_path: Path) -> None:
    assert edgefleet(server, "rollout", "promote").returncode == 2
    nothing = edgefleet(server, "rollout", "promote", "--wave", "everyone")
    assert nothing.returncode == 1
    assert "no rollout is in progress" in nothing.stderr
    empty = tmp_path / "token"
    empty.write_text("\n")
    answer = subprocess.run(
        [sys.executable, "-m", "reconciler", "status", "--server", server.base_url,
         "--token-file", str(empty)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert answer.returncode == 1
    assert answer.stderr.strip() == f"edgefleet: --token-file {empty} is empty"


def test_a_change_held_for_a_window_stays_held_across_an_unrelated_commit(
    server: Harness,
) -> None:
    window = MaintenanceWindow(days=["sun"], start="03:00", duration="2h")
    berlin = site("store-berlin", timezone="Europe/Berlin", windows=[window])
    other = site("store-5")
    agents = {a: server.agent(a) for s in (berlin, other) for a in s.appliances}
    first = release(revision("w1"), [berlin, other])
    server.rollout.record_release(first)
    for agent in agents.values():
        agent.apply()
    server.rollout.tick()
    # a new node image for Berlin (nodes are replaced): held for Sunday's window
    held = release(revision("w2"), [berlin, other], images={"store-berlin": "k3s:next"})
    server.rollout.record_release(held)
    assert served(agents) == digests(first)
    unrelated = release(
        revision("w3"),
        [berlin, other],
        images={"store-berlin": "k3s:next"},
        manifests={"store-5": "x"},
    )
    server.rollout.record_release(unrelated)
    assert served(agents)["store-berlin-edge"] == digests(first)["store-berlin-edge"]
    assert served(agents)["store-5-edge"] == digests(unrelated)["store-5-edge"]
    assert "maintenance window" in server.site("store-berlin")["waiting"]
    server.clock.set(datetime(2025, 3, 9, 2, 30, tzinfo=UTC))  # Sunday 03:30 in Berlin
    server.rollout.tick()
    assert served(agents) == digests(unrelated)


def test_one_appliance_at_a_time_holds_across_an_unrelated_commit(server: Harness) -> None:
    hospital = site("hospital-1", "h-a", "h-b", "h-c", control_plane=["h-b"])
    other = site("store-5")
    specs = [hospital, other]
    agents = {a: server.agent(a) for s in specs for a in s.appliances}
    first = release(revision("t1"), specs)
    server.rollout.record_release(first)
    for agent in agents.values():
        agent.apply()
    server.rollout.tick()
    old = digests(first)
    second = release(revision("t2"), specs, images={"hospital-1": "k3s:next"})
    server.rollout.record_release(second)
    new = digests(second)
    assert served(agents) == {**old, "h-b": new["h-b"]}  # the control plane first
    # a commit elsewhere, before h-b reported: h-a and h-c keep waiting for h-b
    third = release(
        revision("t3"), specs, images={"hospital-1": "k3s:next"}, manifests={"store-5": "x"}
    )
    server.rollout.record_release(third)
    assert served(agents) == {
        **old,
        "h-b": new["h-b"],
        "store-5-edge": digests(third)["store-5-edge"],
    }
    assert "waiting for h-b to report its nodes Running" in server.site("hospital-1")["waiting"]
    agents["h-b"].apply()
    assert served(agents)["h-a"] == new["h-a"]
    assert served(agents)["h-c"] == old["h-c"]
    agents["h-a"].apply()
    assert served(agents) == digests(third)
