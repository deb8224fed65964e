"""Rollout over the real API: waves and soak, halting past maxFailures, superseding,
reverts, maintenance windows and one appliance at a time. Agents are HTTP clients that
post status; the clock is moved by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from agent.contract import MaintenanceWindow
from reconciler.rollout import Release

from .agents import Agent
from .conftest import Harness
from .fleets import SiteSpec, digests, release, revision, site

CANARY = site("grocery-1", ring="canary")
STORES = [site("store-2"), site("store-3"), site("store-4")]
SITES = [CANARY, *STORES]
HOUR = 3600.0


def agents_for(server: Harness, specs: list[SiteSpec]) -> dict[str, Agent]:
    return {a: server.agent(a) for spec in specs for a in spec.appliances}


def roll_out(server: Harness, rel: Release, agents: dict[str, Agent]) -> None:
    """Record ``rel`` and play every agent applying what it is served until it is done."""
    server.rollout.record_release(rel)
    for _ in range(10):
        for agent in agents.values():
            agent.apply()
        server.rollout.tick()
        if server.fleet()["rollout"]["state"] == "done":
            break
    assert {a: agent.digest() for a, agent in agents.items()} == digests(rel)


def served(agents: dict[str, Agent]) -> dict[str, str | None]:
    return {a: agent.digest() for a, agent in agents.items()}


def test_waves_open_after_the_canary_soaks(server: Harness) -> None:
    agents = agents_for(server, SITES)
    first = release(revision("r1"), SITES)
    roll_out(server, first, agents)

    second = release(revision("r2"), SITES, manifest="v2", soak_seconds=2 * HOUR)
    server.rollout.record_release(second)
    new, old = digests(second), digests(first)
    # the canary gets it at once; everyone else stays on r1
    assert served(agents) == {**old, "grocery-1-edge": new["grocery-1-edge"]}
    fleet = server.fleet()
    assert fleet["rollout"]["wave"] == "canary"
    assert {s["name"]: s["state"] for s in fleet["sites"]} == {
        "grocery-1": "rolling",
        "store-2": "pending",
        "store-3": "pending",
        "store-4": "pending",
    }
    agents["grocery-1-edge"].apply()
    server.clock.advance(hours=1)
    agents["grocery-1-edge"].apply()  # a heartbeat an hour in
    assert served(agents)["store-2-edge"] == old["store-2-edge"]
    sites = {s["name"]: s for s in server.fleet()["sites"]}
    assert sites["grocery-1"]["state"] == "soaking"
    assert "waiting for wave everyone" in sites["store-2"]["waiting"]
    # two hours after it reported healthy, its next heartbeat opens the next wave
    server.clock.advance(hours=1, seconds=1)
    agents["grocery-1-edge"].apply()
    assert served(agents) == new
    fleet = server.fleet()
    assert fleet["rollout"]["wave"] == "everyone"
    assert {s["name"]: s["state"] for s in fleet["sites"]}["grocery-1"] == "done"
    # the last wave soaks too before the rollout is done
    for name in ("store-2-edge", "store-3-edge", "store-4-edge"):
        agents[name].apply()
    assert server.fleet()["rollout"]["state"] == "running"
    server.clock.advance(hours=2, seconds=1)
    for agent in agents.values():
        agent.apply()
    assert server.fleet()["rollout"]["state"] == "done"
    assert server.fleet()["rollout"]["progress"] == 1.0


def test_soak_restarts_when_the_canary_turns_unhealthy(server: Harness) -> None:
    agents = agents_for(server, SITES)
    roll_out(server, release(revision("r1"), SITES), agents)
    second = release(revision("r2"), SITES, manifest="v2", soak_seconds=HOUR, max_failures=1)
    server.rollout.record_release(second)
    canary = agents["grocery-1-edge"]
    canary.apply()
    server.clock.advance(minutes=50)
    # still applied, a cluster back to Provisioning: not failed, but the soak starts over
    canary.report(digests(second)["grocery-1-edge"], phase="Provisioning").raise_for_status()
    server.clock.advance(minutes=20)
    canary.apply()
    server.rollout.tick()
    assert served(agents)["store-2-edge"] != digests(second)["store-2-edge"]
    server.clock.advance(minutes=61)
    canary.apply()
    assert served(agents)["store-2-edge"] == digests(second)["store-2-edge"]


def test_a_wave_past_max_failures_halts_naming_the_sites(server: Harness) -> None:
    agents = agents_for(server, SITES)
    first = release(revision("r1"), SITES)
    roll_out(server, first, agents)
    # the canary passes; in the last wave one failure of three is allowed, two are not
    second = release(revision("r2"), SITES, manifest="v2", max_failures=1)
    server.rollout.record_release(second)
    agents["grocery-1-edge"].apply()
    new = digests(second)
    assert served(agents) == new
    agents["store-2-edge"].report(None, error=new["store-2-edge"]).raise_for_status()
    assert server.fleet()["rollout"]["state"] == "running"  # one failure is allowed
    agents["store-3-edge"].apply(health="unhealthy")
    rollout = server.fleet()["rollout"]
    assert rollout["state"] == "halted"
    assert rollout["failing"] == ["store-2", "store-3"]
    site = server.site("store-2")
    assert site["state"] == "failed"
    assert "pulling image failed" in site["appliances"][0]["error"]
    events = [e["message"] for e in server.site("store-3")["events"]]
    assert any("store-3 failed" in m for m in events)
    # the halt sticks: a healthy report later and time passing change nothing
    agents["store-3-edge"].apply()
    server.clock.advance(hours=5)
    server.rollout.tick()
    assert server.fleet()["rollout"]["state"] == "halted"


def test_a_halted_canary_holds_every_later_wave_until_a_newer_release(server: Harness) -> None:
    agents = agents_for(server, SITES)
    first = release(revision("r1"), SITES)
    roll_out(server, first, agents)
    broken = release(revision("r2-broken"), SITES, manifest="v2-broken")
    server.rollout.record_release(broken)
    canary = agents["grocery-1-edge"]
    canary.report(None, error=digests(broken)["grocery-1-edge"]).raise_for_status()
    fleet = server.fleet()
    assert fleet["rollout"]["state"] == "halted"
    assert fleet["rollout"]["failing"] == ["grocery-1"]
    server.clock.advance(hours=3)
    server.rollout.tick()
    assert served(agents) == {**digests(first), "grocery-1-edge": digests(broken)["grocery-1-edge"]}
    held = {s["name"]: s["state"] for s in fleet["sites"]}
    assert held["store-2"] == "held (halted)"
    # a fix supersedes the halted rollout and starts over from the canary
    fixed = release(revision("r3-fixed"), SITES, manifest="v3")
    server.rollout.record_release(fixed)
    fleet = server.fleet()
    assert fleet["rollout"]["revision"] == fixed.revision
    assert fleet["rollout"]["state"] == "running"
    assert fleet["revision"]["sha"] == fixed.revision
    assert served(agents) == {**digests(first), "grocery-1-edge": digests(fixed)["grocery-1-edge"]}
    canary.apply()
    assert served(agents) == digests(fixed)


def test_a_newer_release_supersedes_a_running_rollout(server: Harness) -> None:
    agents = agents_for(server, SITES)
    roll_out(server, release(revision("r1"), SITES), agents)
    second = release(revision("r2"), SITES, manifest="v2", soak_seconds=HOUR)
    server.rollout.record_release(second)
    agents["grocery-1-edge"].apply()
    third = release(revision("r3"), SITES, manifest="v3", soak_seconds=HOUR)
    server.rollout.record_release(third)
    assert served(agents)["grocery-1-edge"] == digests(third)["grocery-1-edge"]
    events = [e["message"] for e in server.site("grocery-1")["events"]]
    assert any("admitted" in m for m in events)
    fleet = server.fleet()
    assert fleet["rollout"]["revision"] == third.revision
    with server.store.read() as tx:
        states = {
            r.revision: r.state
            for r in [tx.rollouts.get(second.revision), tx.rollouts.get(third.revision)]
            if r
        }
    assert states == {second.revision: "superseded", third.revision: "running"}


def test_a_revert_reaches_every_site_at_once(server: Harness) -> None:
    agents = agents_for(server, SITES)
    first = release(revision("r1"), SITES, soak_seconds=HOUR)
    roll_out_with_soak(server, first, agents)
    second = release(revision("r2"), SITES, manifest="v2", soak_seconds=HOUR)
    roll_out_with_soak(server, second, agents)
    # `git revert`: the content of r1 again, under a new commit
    reverted = release(revision("r3-revert"), SITES, soak_seconds=HOUR)
    assert digests(reverted) == digests(first)
    server.rollout.record_release(reverted)
    assert served(agents) == digests(first)  # no wave, no soak
    sites = server.fleet()["sites"]
    assert {s["name"]: s["state"] for s in sites} == dict.fromkeys(
        ["grocery-1", "store-2", "store-3", "store-4"], "rolling"
    )


def test_a_partial_revert_skips_gates_only_where_the_state_ran_before(server: Harness) -> None:
    agents = agents_for(server, SITES)
    first = release(revision("r1"), SITES)
    roll_out(server, first, agents)
    second = release(revision("r2"), SITES, manifest="v2")
    roll_out(server, second, agents)
    # store-2 goes back to v1 (it ran that); the canary and store-3 get something new
    third = release(
        revision("r3"),
        SITES,
        manifest="v2",
        manifests={"grocery-1": "v3", "store-2": "v1", "store-3": "v3"},
    )
    server.rollout.record_release(third)
    assert served(agents) == {
        **digests(second),
        "grocery-1-edge": digests(third)["grocery-1-edge"],  # wave canary
        "store-2-edge": digests(first)["store-2-edge"],  # the revert, at once
    }
    agents["grocery-1-edge"].apply()
    assert served(agents) == digests(third)


def test_a_site_the_release_does_not_change_is_never_held(server: Harness) -> None:
    agents = agents_for(server, SITES)
    roll_out(server, release(revision("r1"), SITES), agents)
    # only store-3 changes: the canary wave has nothing to soak, so it is not waited for
    only = release(revision("r2"), SITES, manifests={"store-3": "v2"}, soak_seconds=HOUR)
    server.rollout.record_release(only)
    assert served(agents)["store-3-edge"] == digests(only)["store-3-edge"]
    sites = {s["name"]: s for s in server.fleet()["sites"]}
    assert sites["grocery-1"]["state"] == "up-to-date"
    assert sites["grocery-1"]["revision"] == only.revision


def test_disruptive_changes_wait_for_the_maintenance_window(server: Harness) -> None:
    # Saturday 01:00-05:00 in Chicago (UTC-6 in winter, -5 from mid-March)
    window = MaintenanceWindow(days=["sat"], start="01:00", duration="4h")
    hospital = site("hospital-1", timezone="America/Chicago", windows=[window])
    sites = [CANARY, hospital]
    agents = agents_for(server, sites)
    first = release(revision("r1"), sites)
    roll_out(server, first, agents)
    # a new node image (nodes are replaced) everywhere, and a manifest change
    second = release(
        revision("r2"),
        sites,
        image="rancher/k3s:v1.31.0-k3s1",
        manifest="v2",
    )
    server.rollout.record_release(second)
    agents["grocery-1-edge"].apply()  # the canary has no windows: goes at once
    assert served(agents)["hospital-1-edge"] == digests(first)["hospital-1-edge"]
    waiting = server.site("hospital-1")["waiting"]
    assert "maintenance window at Sat 2025-03-08 01:00 America/Chicago" in waiting
    server.clock.set(datetime(2025, 3, 8, 6, 59, tzinfo=UTC))  # 00:59 in Chicago
    server.rollout.tick()
    assert served(agents)["hospital-1-edge"] == digests(first)["hospital-1-edge"]
    server.clock.set(datetime(2025, 3, 8, 7, 0, tzinfo=UTC))  # 01:00 in Chicago
    server.rollout.tick()
    assert served(agents)["hospital-1-edge"] == digests(second)["hospital-1-edge"]


def test_non_disruptive_changes_do_not_wait_for_the_window(server: Harness) -> None:
    window = MaintenanceWindow(days=["sun"], start="03:00", duration="2h")
    berlin = site("store-berlin", timezone="Europe/Berlin", windows=[window])
    agents = agents_for(server, [berlin])
    roll_out(server, release(revision("r1"), [berlin]), agents)
    manifests_only = release(revision("r2"), [berlin], manifest="v2")
    server.rollout.record_release(manifests_only)
    assert served(agents) == digests(manifests_only)


@pytest.mark.parametrize("held", [False, True], ids=["served-read", "served-held"])
def test_a_node_change_is_disruptive_even_when_the_loop_does_not_say_so(
    server: Harness, held: bool
) -> None:
    """Judged against what is served: read from the store, or taken from the states the
    caller holds (the last release's, as the reconcile loop hands them)."""
    window = MaintenanceWindow(days=["sun"], start="03:00", duration="2h")
    berlin = site("store-berlin", timezone="Europe/Berlin", windows=[window])
    agents = agents_for(server, [berlin])
    first = release(revision("r1"), [berlin])
    roll_out(server, first, agents)
    earlier = {s.digest: s for states in first.sites.values() for s in states.states.values()}
    second = release(revision("r2"), [berlin], image="k3s:new")
    server.rollout.record_release(replace(second, earlier=earlier if held else {}))
    assert served(agents) == digests(first)
    server.clock.set(datetime(2025, 3, 9, 2, 30, tzinfo=UTC))  # Sunday 03:30 in Berlin
    server.rollout.tick()
    assert served(agents) != digests(first)


def test_a_multi_appliance_cluster_takes_a_disruptive_change_one_appliance_at_a_time(
    server: Harness,
) -> None:
    # a 3-appliance cluster: the control plane runs on h-b; h-a and h-c run workers
    hospital = site("hospital-1", "h-a", "h-b", "h-c", control_plane=["h-b"])
    agents = agents_for(server, [hospital])
    first = release(revision("r1"), [hospital])
    roll_out(server, first, agents)
    old = digests(first)
    second = release(revision("r2"), [hospital], image="k3s:next")
    new = digests(second)
    server.rollout.record_release(second)
    assert served(agents) == {**old, "h-b": new["h-b"]}  # control plane first
    assert "waiting for h-b to report its nodes Running" in server.site("hospital-1")["waiting"]
    # h-b applied, its node still provisioning: the next appliance keeps waiting
    agents["h-b"].report(new["h-b"], phase="Provisioning").raise_for_status()
    assert served(agents) == {**old, "h-b": new["h-b"]}
    agents["h-b"].report(new["h-b"], phase="Running", node_phase="Pending").raise_for_status()
    assert served(agents) == {**old, "h-b": new["h-b"]}
    agents["h-b"].apply()
    assert served(agents) == {**old, "h-a": new["h-a"], "h-b": new["h-b"]}
    agents["h-a"].apply()
    assert served(agents) == new
    agents["h-c"].apply()
    assert server.fleet()["rollout"]["state"] == "done"


def test_a_non_disruptive_change_reaches_every_appliance_of_the_cluster_at_once(
    server: Harness,
) -> None:
    hospital = site("hospital-1", "h-a", "h-b", "h-c", control_plane=["h-a", "h-b", "h-c"])
    agents = agents_for(server, [hospital])
    roll_out(server, release(revision("r1"), [hospital]), agents)
    second = release(revision("r2"), [hospital], manifest="v2")
    server.rollout.record_release(second)
    assert served(agents) == digests(second)


def test_cluster_status_shows_phase_tasks_and_progress(server: Harness) -> None:
    hospital = site("hospital-1", "h-a", "h-b", control_plane=["h-a"])
    agents = agents_for(server, [hospital])
    rel = release(revision("r1"), [hospital])
    server.rollout.record_release(rel)
    name = "hospital-1-store"
    agents["h-a"].report(digests(rel)["h-a"], phase="Running", cluster=name).raise_for_status()
    body = {
        "appliedDigest": None,
        "health": "healthy",
        "clusters": [
            {
                "name": name,
                "phase": "Provisioning",
                "tasks": [
                    {"name": "pull image", "state": "done", "progress": 100},
                    {"name": "create node", "state": "running", "progress": 40},
                ],
            }
        ],
    }
    agents["h-b"].http.post("/v1/status", json=body, headers=agents["h-b"].auth)
    cluster = server.site("hospital-1")["clusters"][0]
    assert (cluster["name"], cluster["phase"]) == (name, "Provisioning")
    assert cluster["progress"] == 80  # (100 on h-a, 100 and 40 on h-b) / 3
    assert [(t["appliance"], t["name"], t["progress"]) for t in cluster["tasks"]][-1] == (
        "h-b",
        "create node",
        40,
    )
    appliances = {
        a["id"]: (a["status"], a["health"]) for a in server.site("hospital-1")["appliances"]
    }
    # provisioning is not unhealthy
    assert appliances == {"h-a": ("In-Use", "healthy"), "h-b": ("In-Use", "healthy")}
    agents["h-b"].report(digests(rel)["h-b"], phase="Running", cluster=name).raise_for_status()
    assert server.site("hospital-1")["clusters"][0]["phase"] == "Running"


def test_heartbeats_decide_appliance_health(server: Harness) -> None:
    agents = agents_for(server, [CANARY])
    roll_out(server, release(revision("r1"), [CANARY]), agents)
    assert server.site("grocery-1")["appliances"][0]["health"] == "healthy"
    server.clock.advance(seconds=91)
    assert server.site("grocery-1")["appliances"][0]["health"] == "unhealthy"
    assert server.site("grocery-1")["health"] == "unhealthy"
    agents["grocery-1-edge"].apply()
    assert server.site("grocery-1")["health"] == "healthy"


def roll_out_with_soak(server: Harness, rel: Release, agents: dict[str, Agent]) -> None:
    server.rollout.record_release(rel)
    for _ in range(6):
        for agent in agents.values():
            agent.apply()
        server.clock.advance(seconds=rel.soak_seconds + 1)
        for agent in agents.values():
            agent.apply()
        if server.fleet()["rollout"]["state"] == "done":
            return
    raise AssertionError("the rollout did not finish")
