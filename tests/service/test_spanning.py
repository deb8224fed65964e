"""A cluster spanning appliances, as the reconciler serves it: one join secret per cluster,
served only to its member appliances inside their signed state (never in a digest, the fleet
view or the store's documents); reboot leases granted to one member at a time; and an
appliance dropped from Git served an empty state until it reports its nodes gone, then its
token revoked. The example fleet's hospital-1 cluster spans three hypervisors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event

from agent.contract import DesiredState
from reconciler.delivery import DesiredDocuments
from reconciler.rollout import Release

from .agents import Agent
from .conftest import Harness
from .fleets import digests, revision
from .test_example_fleet import example_release

HOSPITAL = ["hospital-1-kvm-01", "hospital-1-kvm-02", "hospital-1-kvm-03"]
CLUSTER = "hospital-1-clinical"
VIP = "192.168.10.50"


@pytest.fixture(scope="module")
def first() -> Release:
    return example_release(revision("span1"))


def register_all(server: Harness, release: Release) -> dict[str, Agent]:
    """Every appliance of ``release`` registered, each at its own address."""
    agents = {}
    for n, appliance in enumerate(sorted(digests(release)), 10):
        agent = server.agent(appliance, register=False)
        agent.register(ip=f"10.0.0.{n}").raise_for_status()
        agents[appliance] = agent
    return agents


def rolled_out(server: Harness, release: Release) -> dict[str, Agent]:
    """Every appliance registered (each at its own address) and served ``release``."""
    agents = register_all(server, release)
    server.rollout.record_release(release)
    for _ in range(2):  # the canary, then everyone after its soak
        for agent in agents.values():
            agent.apply()
        server.clock.advance(seconds=release.soak_seconds + 1)
        server.rollout.tick()
    for agent in agents.values():
        agent.apply()
    assert server.fleet()["rollout"]["state"] == "done"
    return agents


def state_of(agent: object) -> DesiredState:
    answer = agent.desired()  # type: ignore[attr-defined]
    assert answer.status_code == 200, answer.text
    return DesiredState.model_validate_json(answer.content)


def test_members_share_one_secret_that_no_one_else_is_served(
    server: Harness, first: Release
) -> None:
    agents = rolled_out(server, first)
    states = {a: state_of(agents[a]) for a in HOSPITAL}
    joins = {a: s.joining(CLUSTER) for a, s in states.items()}
    tokens = {j.token for j in joins.values() if j is not None}
    assert len(tokens) == 1
    (token,) = tokens
    assert len(token) == 64 and int(token, 16) >= 0  # 32 random bytes, hex
    # the VIP (kube-vip holds it) is the server every member joins
    assert {j.server for j in joins.values() if j is not None} == {f"https://{VIP}:6443"}
    # the join is outside the digest: the digest is still what Git asked for
    for appliance, state in states.items():
        assert state.computed_digest() == state.digest == digests(first)[appliance]
        etag = agents[appliance].desired().headers["ETag"].strip('"')
        assert etag == state.etag() and etag.startswith(state.digest + "+")
    # no other appliance, view or stored document carries it
    for appliance, agent in agents.items():
        if appliance not in HOSPITAL:
            body = agent.desired().content
            assert token.encode() not in body and b'"join"' not in body
    assert token not in json.dumps(server.fleet())
    assert token not in json.dumps(server.site("hospital-1"))
    with server.store.read() as tx:
        stored = tx.documents.get_many({digests(first)[a] for a in HOSPITAL})
    assert stored and all(token not in text for text in stored.values())
    # a later release keeps the cluster's secret
    server.rollout.record_release(example_release(revision("span2")))
    assert state_of(agents[HOSPITAL[1]]).joining(CLUSTER).token == token  # type: ignore[union-attr]


def test_a_first_server_starts_the_cluster_until_it_formed_then_joins(
    server: Harness, first: Release
) -> None:
    agents = rolled_out(server, first)
    # rolled_out reported every member Running: the cluster formed
    joined = state_of(agents[HOSPITAL[0]]).joining(CLUSTER)
    assert joined is not None and joined.init is False
    assert joined.server == f"https://{VIP}:6443"


def test_one_member_at_a_time_holds_the_reboot_lease(server: Harness, first: Release) -> None:
    agents = rolled_out(server, first)
    one, two, _ = (agents[a] for a in HOSPITAL)

    def ask(agent: object, cluster: str = CLUSTER, seconds: float = 60) -> dict[str, object]:
        answer = agent.http.post(  # type: ignore[attr-defined]
            "/v1/leases",
            json={"cluster": cluster, "seconds": seconds},
            headers=agent.auth,  # type: ignore[attr-defined]
        )
        assert answer.status_code == 200, answer.text
        found: dict[str, object] = answer.json()
        return found

    assert ask(one)["granted"] is True
    refused = ask(two)
    assert (refused["granted"], refused["holder"]) == (False, HOSPITAL[0])
    assert ask(one)["granted"] is True  # a renewal
    released = one.http.delete(f"/v1/leases/{CLUSTER}", headers=one.auth)
    assert released.status_code == 204
    assert ask(two)["granted"] is True
    assert ask(one)["holder"] == HOSPITAL[1]
    # a holder that never gives it back loses it when it expires
    server.clock.advance(seconds=61)
    assert ask(one)["granted"] is True
    # an appliance outside the cluster gets none
    outsider = agents["grocery-0412-vm"]
    answer = outsider.http.post("/v1/leases", json={"cluster": CLUSTER}, headers=outsider.auth)
    assert answer.status_code == 403
    assert answer.json()["detail"] == f"grocery-0412-vm is not served cluster '{CLUSTER}'"


def test_an_appliance_dropped_from_git_is_emptied_then_its_token_revoked(
    server: Harness, first: Release
) -> None:
    agents = rolled_out(server, first)
    gone = "grocery-0412-vm"
    sites = {k: v for k, v in first.sites.items() if k != "grocery-0412"}
    server.rollout.record_release(replace(first, revision=revision("span3"), sites=sites))
    agent = agents[gone]
    emptied = state_of(agent)
    assert (emptied.appliance, emptied.clusters) == (gone, [])
    assert emptied.computed_digest() == emptied.digest
    listed = {a["id"]: a["status"] for a in server.fleet()["discovered"]}
    assert listed == {gone: "Decommissioning"}
    # nodes still running: the token keeps working
    agent.report(emptied.digest).raise_for_status()
    assert agent.desired().status_code == 200
    # its nodes are gone: the token is revoked, the appliance listed decommissioned
    answer = agent.http.post(
        "/v1/status",
        json={"appliedDigest": emptied.digest, "health": "healthy", "clusters": []},
        headers=agent.auth,
    )
    assert answer.status_code == 202
    assert agent.desired().status_code == 401
    listed = server.fleet()["decommissioned"]
    assert [(d["appliance"], d["site"]) for d in listed] == [(gone, "grocery-0412")]
    assert agents["store-berlin-07-edge"].desired().status_code == 200


def registered(server: Harness, release: Release) -> dict[str, Agent]:
    """Every appliance registered, each at its own address; ``release`` recorded (the
    canary is served it, the documents of the wave after are made ahead)."""
    agents = register_all(server, release)
    server.rollout.record_release(release)
    deadline = time.monotonic() + 20
    while server.made_ahead() < len(agents) - 1:  # every appliance but the canary
        assert time.monotonic() < deadline, f"{server.made_ahead()} documents made ahead"
        time.sleep(0.05)
    return agents


@contextmanager
def documents_read(server: Harness) -> Iterator[set[str]]:
    """The digests of the documents the store reads inside the block."""
    read: set[str] = set()

    def count(_conn: object, _cursor: object, statement: str, values: object, *_: object) -> None:
        if "documents.content" in statement and isinstance(values, tuple):
            read.update(v for v in values if isinstance(v, str))

    engine = server.store._engine  # noqa: SLF001 - seeing what the store reads
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield read
    finally:
        event.remove(engine, "before_cursor_execute", count)


def open_the_next_wave(server: Harness, agents: dict[str, Agent], release: Release) -> None:
    """The canary runs ``release`` healthy for its soak: the next wave opens."""
    canary = agents["grocery-0412-vm"]
    canary.apply()
    server.clock.advance(seconds=release.soak_seconds + 1)
    canary.apply()  # the report after the soak opens it


def test_a_members_state_made_ahead_is_served_as_made(server: Harness, first: Release) -> None:
    """Made ahead with its joins, a member's state is served as made when its wave opens:
    its joins are checked, its document is not read."""
    agents = registered(server, first)
    with documents_read(server) as read:
        open_the_next_wave(server, agents, first)
    assert read and not read & {digests(first)[a] for a in HOSPITAL}  # the canary's, only
    served = [a for a in HOSPITAL if agents[a].digest() == digests(first)[a]]
    assert served  # the first of the cluster's members at least
    for appliance in served:
        join = state_of(agents[appliance]).joining(CLUSTER)
        assert join is not None and join.server == f"https://{VIP}:6443"
        assert join.init is True  # nobody reported the cluster Running yet


def test_a_members_state_made_ahead_is_made_again_when_its_joins_changed(
    server: Harness, first: Release
) -> None:
    """The cluster formed after a member's state was made ahead: it is served with the
    joins of now (told to join the cluster, not to start it)."""
    agents = registered(server, first)
    with server.store.write() as tx:  # a member reported it Running meanwhile
        assert tx.joins.formed("hospital-1", [CLUSTER], at=server.clock().timestamp())
    open_the_next_wave(server, agents, first)
    served = [a for a in HOSPITAL if agents[a].digest() == digests(first)[a]]
    assert served
    for appliance in served:
        answer = agents[appliance].desired()
        join = DesiredState.model_validate_json(answer.content).joining(CLUSTER)
        assert join is not None and join.init is False
        assert answer.headers["ETag"].strip('"') == DesiredState.model_validate_json(
            answer.content
        ).etag()


def test_states_with_joins_are_made_ahead_last(
    server: Harness, first: Release, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They cost the most (read for their joins): a wave that opens while its documents are
    being made finds the others made."""
    made: list[str] = []
    make = DesiredDocuments._make_many  # noqa: SLF001 - seeing the order they are made in

    def seen(self: DesiredDocuments, wanted: list[tuple[str, str, Any, Any]]) -> Any:
        if threading.current_thread().name == "documents-ahead":
            made.extend(digest for _, digest, _, _ in wanted)
        return make(self, wanted)

    monkeypatch.setattr(DesiredDocuments, "_make_many", seen)
    registered(server, first)
    with server.store.read() as tx:
        spanning = {t.digest for t in tx.rollouts.targets(first.revision) if t.shared}
    assert spanning and spanning <= {digests(first)[a] for a in HOSPITAL}
    assert len(made) > len(spanning)
    assert set(made[-len(spanning) :]) == spanning
