"""The GitOps loop end to end: real git, the real reconciler on 127.0.0.1, an agent for each
of two containerized sites in different rollout waves, and a real Docker engine."""

from __future__ import annotations

import time

from tests.support.gitops import Loop, plan_json, wait_for

CANARY, CANARY_ID = "store-1", "store-1-a"  # rollout wave "canary"
LATER, LATER_ID = "restaurant-7", "restaurant-7-a"  # wave "everyone"


def running(loop: Loop, appliance: str) -> dict[str, str]:
    return loop.containers(appliance)


def test_gitops_loop(loop: Loop) -> None:
    loop.start_agent(CANARY_ID)
    loop.start_agent(LATER_ID)

    # the first revision reaches both sites, the canary first
    first_canary = wait_for(lambda: running(loop, CANARY_ID), 60, "the canary's node")
    first_later = wait_for(lambda: running(loop, LATER_ID), 60, "the second wave's node")
    assert list(first_canary) == ["pos-main-1"]
    assert list(first_later) == ["kitchen-main-1"]

    # a branch changes one site; plan shows exactly that
    loop.git("checkout", "-q", "-b", "store-1-more-pods")
    loop.fleet.edit(
        f"sites/{CANARY}/clusters/pos.yaml",
        "        maxPods: 80\n",
        "        maxPods: 80\n        kubeletArgs: [max-pods=90]\n",
    )
    loop.commit("store-1: more pods per node")
    plan = plan_json(loop, "main", "store-1-more-pods")
    assert [s["name"] for s in plan["sites"]] == [CANARY]  # type: ignore[index]
    (cluster,) = plan["sites"][0]["clusters"]  # type: ignore[index]
    assert [(n["node"], n["kind"]) for n in cluster["nodes"]] == [("pos-main-1", "restarted")]

    # merging it replaces that site's node, and only that site's
    loop.git("checkout", "-q", "main")
    merged = time.monotonic()
    loop.git("merge", "-q", "--ff-only", "store-1-more-pods")
    second_canary = wait_for(
        lambda: (found := running(loop, CANARY_ID)) != first_canary and found,
        60,
        "store-1's new node",
    )
    merge_to_running = time.monotonic() - merged
    assert list(second_canary) == ["pos-main-1"]  # one node, replaced (expand-first)
    assert running(loop, LATER_ID) == first_later
    print(f"merge to running: {merge_to_running:.2f} s")
    assert merge_to_running < 30

    # a fleet-wide change reaches the canary first, the second wave after the canary is healthy
    loop.fleet.edit(
        "profiles/store-1.0.0.yaml",
        "      version: 22.04.x\n",
        "      version: 22.04.x\n      values:\n        packages: [curl, chrony]\n",
    )
    loop.commit("stores: fewer OS packages")
    wait_for(
        lambda: (found := running(loop, CANARY_ID)) != second_canary and found,
        60,
        "the canary to take the fleet-wide change",
    )
    canary_changed = time.monotonic()
    assert running(loop, LATER_ID) == first_later, "the second wave moved before the canary"
    third_later = wait_for(
        lambda: (found := running(loop, LATER_ID)) != first_later and found,
        60,
        "the second wave to take the fleet-wide change",
    )
    assert time.monotonic() - canary_changed >= 1.5  # the canary soaks 2 s first
    assert list(third_later) == ["kitchen-main-1"]

    # git revert brings the previous nodes back, at once (the digests ran healthy before)
    loop.git("revert", "--no-edit", "HEAD")
    wait_for(lambda: running(loop, CANARY_ID) == second_canary, 60, "the canary's previous node")
    wait_for(lambda: running(loop, LATER_ID) == first_later, 60, "the second wave's previous node")

    # deleting a cluster's file removes its containers and its network
    assert loop.networks(LATER_ID)
    loop.fleet.remove(f"sites/{LATER}/clusters/kitchen.yaml")
    loop.commit("restaurant-7 closes its cluster")
    wait_for(lambda: not running(loop, LATER_ID) and not loop.networks(LATER_ID), 60,
             "restaurant-7's cluster to be removed")  # fmt: skip
    assert running(loop, CANARY_ID) == second_canary
