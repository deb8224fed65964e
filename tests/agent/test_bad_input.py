"""Bad desired states are refused with a one-line reason before anything is applied: no
container, no network, no inventory row, no saved state."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from agent.apply.admission import (
    DigestMismatch,
    InconsistentState,
    MalformedState,
    StateRefused,
    UnsafeName,
    parse_state,
)
from agent.apply.inventory import STATE_NAME
from agent.cli import main
from agent.contract import ClusterState, DesiredState
from tests.support.appliances import TestAgent
from tests.support.states import cluster, manifests, state


def with_manifest_name(name: str) -> Callable[[ClusterState], ClusterState]:
    def change(c: ClusterState) -> ClusterState:
        return c.model_copy(update={"manifests": manifests("ok.yaml", name)})

    return change


def with_node_name(name: str) -> Callable[[ClusterState], ClusterState]:
    def change(c: ClusterState) -> ClusterState:
        node = c.nodes[0].model_copy(update={"name": name})
        return c.model_copy(update={"nodes": [node, *c.nodes[1:]]})

    return change


def with_pack(name: str) -> Callable[[ClusterState], ClusterState]:
    def change(c: ClusterState) -> ClusterState:
        return c.model_copy(update={"manifests": manifests("ok.yaml", pack=name)})

    return change


def with_node_pool(pool: str) -> Callable[[ClusterState], ClusterState]:
    def change(c: ClusterState) -> ClusterState:
        node = c.nodes[0].model_copy(update={"pool": pool})
        return c.model_copy(update={"nodes": [node, *c.nodes[1:]]})

    return change


def with_duplicate_node(c: ClusterState) -> ClusterState:
    return c.model_copy(update={"nodes": [*c.nodes, c.nodes[0]]})


BAD_CLUSTERS = [
    ("manifest-parent-dir", with_manifest_name("../x.yaml"), UnsafeName, "'../x.yaml'"),
    ("manifest-absolute", with_manifest_name("/etc/passwd"), UnsafeName, "'/etc/passwd'"),
    ("manifest-separator", with_manifest_name("sub/x.yaml"), UnsafeName, "'sub/x.yaml'"),
    ("manifest-backslash", with_manifest_name("..\\x.yaml"), UnsafeName, "not a plain file"),
    ("manifest-dot-dot", with_manifest_name(".."), UnsafeName, "not a plain file"),
    ("manifest-hidden", with_manifest_name(".x.yaml"), UnsafeName, "no leading dot"),
    ("manifest-empty", with_manifest_name(""), UnsafeName, "manifest name ''"),
    ("pack-escapes", with_pack("../../etc"), UnsafeName, "pack name '../../etc'"),
    ("node-upper-case", with_node_name("Node_1"), UnsafeName, "node name 'Node_1'"),
    ("node-too-long", with_node_name("n" * 55), UnsafeName, "at most 54"),
    ("node-unknown-pool", with_node_pool("nowhere"), InconsistentState, "unknown pool"),
    ("node-twice", with_duplicate_node, InconsistentState, "appears more than once"),
]


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_CLUSTERS],
)
def test_a_bad_state_is_refused_and_nothing_is_applied(
    agent: TestAgent,
    change: Callable[[ClusterState], ClusterState],
    error: type[StateRefused],
    words: str,
) -> None:
    name = agent.name("pos")
    bad = state(agent.appliance, change(cluster(name, appliance=agent.appliance)))

    with pytest.raises(error) as refused:
        agent.apply(bad)

    assert words in str(refused.value)
    assert "\n" not in str(refused.value)
    assert_nothing_applied(agent)


def test_a_digest_that_does_not_match_the_content_is_refused(agent: TestAgent) -> None:
    good = state(agent.appliance, cluster(agent.name("pos"), appliance=agent.appliance))
    tampered = DesiredState.model_validate(
        {**good.model_dump(), "site": "another-site"}  # content changed, digest kept
    )

    with pytest.raises(DigestMismatch, match="does not match its content"):
        agent.apply(tampered)

    assert_nothing_applied(agent)


def test_a_state_for_another_appliance_is_refused(agent: TestAgent) -> None:
    agent.apply(state(agent.appliance))
    other = state("someone-else", cluster(agent.name("pos"), appliance="someone-else"))

    with pytest.raises(InconsistentState, match="this agent is"):
        agent.apply(other)

    assert agent.containers() == []


def test_an_unknown_field_is_refused_by_the_command(
    agent: TestAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    good = state(agent.appliance, cluster(agent.name("pos"), appliance=agent.appliance))
    document = good.model_dump(mode="json")
    document["clusters"][0]["nodes"][0]["colour"] = "blue"
    path = agent.data_dir.parent / "state.json"
    path.write_text(json.dumps(document))

    code = main(
        [
            "apply",
            f"--state={path}",
            f"--data-dir={agent.data_dir}",
            f"--docker-url={agent.base_url}",
            "--pull=never",
        ]
    )

    assert code == 1
    err = capsys.readouterr().err
    assert err == (
        "edgefleet-agent: refused: desired state: clusters.0.nodes.0.colour: "
        "Extra inputs are not permitted\n"
    )
    assert_nothing_applied(agent)
    with pytest.raises(MalformedState):
        parse_state(path.read_bytes())
    with pytest.raises(MalformedState, match="^desired state: document: Invalid JSON"):
        parse_state(b"{not json")


def assert_nothing_applied(agent: TestAgent) -> None:
    assert agent.containers() == []
    assert agent.network_names() == []
    assert agent.volume_names() == []
    assert not (agent.data_dir / STATE_NAME).exists()
    if agent.data_dir.exists():
        assert agent.records() == ()
