"""The k3s environment each node of a containerized cluster gets: the first control-plane node
is told to start the cluster, the others where to join it (its network alias) and with which
token, one only this agent knows. The stand-in node image runs no k3s, so whether they then
form one cluster is not checked here."""

from __future__ import annotations

from tests.support.appliances import TestAgent
from tests.support.states import cluster, state


def env(agent: TestAgent, node: str) -> dict[str, str]:
    container = agent.node_container(node)
    container.reload()
    pairs = (item.split("=", 1) for item in container.attrs["Config"]["Env"])
    return {k: v for k, v in pairs}


def test_the_first_server_is_told_to_start_the_cluster_the_others_where_to_join(
    agent: TestAgent,
) -> None:
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
