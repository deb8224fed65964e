"""Nodes of a containerized cluster find each other: the first control-plane node starts the
cluster, the others join it by its network alias with a token only this agent knows."""

from __future__ import annotations

from tests.agent.conftest import TestAgent
from tests.agent.states import cluster, state


def env(agent: TestAgent, node: str) -> dict[str, str]:
    container = agent.node_container(node)
    container.reload()
    pairs = (item.split("=", 1) for item in container.attrs["Config"]["Env"])
    return {k: v for k, v in pairs}


def test_first_server_starts_the_cluster_and_the_others_join_it(agent: TestAgent) -> None:
    name = agent.name("pos")
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance, workers=2))
    assert agent.apply(desired).ok
    first = env(agent, f"{name}-main-1")
    assert first["K3S_CLUSTER_INIT"] == "true"
    assert "K3S_URL" not in first
    token = first["K3S_TOKEN"]
    assert len(token) == 48
    assert token not in desired.model_dump_json()  # never part of the desired state
    for worker in (f"{name}-workers-1", f"{name}-workers-2"):
        joining = env(agent, worker)
        assert joining["K3S_URL"] == f"https://{name}-main-1:6443"
        assert joining["K3S_TOKEN"] == token
    # another cluster of the same agent has its own token
    other = agent.name("kiosk")
    both = state(
        agent.appliance,
        cluster(name, appliance=agent.appliance, workers=2),
        cluster(other, appliance=agent.appliance, workers=0),
    )
    assert agent.apply(both).ok
    assert env(agent, f"{other}-main-1")["K3S_TOKEN"] not in (token, "")
    assert env(agent, f"{name}-main-1")["K3S_TOKEN"] == token  # same as before
