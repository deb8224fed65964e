"""Encrypted manifests on the real engine: the agent opens a SOPS document with its age
identity and writes the plaintext into the control-plane node alone (mode 0600); a document
it cannot open refuses the state before anything is applied or kept, with the reason, and the
plaintext is in no result, journal, inventory or kept state."""

from __future__ import annotations

import json

import pytest

from agent.apply.inventory import STATE_NAME, Inventory
from agent.apply.opening import SecretRefused
from agent.secrets.keys import generate
from tests.support.appliances import MANIFESTS, TestAgent
from tests.support.secrets import flip_value, key_file, sealed_for
from tests.support.states import cluster, manifests, secret_manifest, state

TOKEN = "enr-7f3k9q2m4x8v"


def test_an_encrypted_manifest_is_written_decrypted_into_the_node_alone(agent: TestAgent) -> None:
    identity = generate()
    key_file(agent.data_dir, identity)
    name = agent.name("pos")
    files = [*manifests("a.yaml"), secret_manifest(sealed_for(identity))]
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance, files=files))
    assert TOKEN not in desired.canonical_json().decode()

    result = agent.apply(desired)

    assert result.ok, result
    control = agent.node_container(f"{name}-main-1")
    assert agent.listing(control) == ["01-demo-a.yaml", "02-secrets-pos-token.yaml"]
    written = agent.read(control, f"{MANIFESTS}/02-secrets-pos-token.yaml")
    assert f'token: "{TOKEN}"' in written and "sops" not in written and "ENC[" not in written
    mode = control.exec_run(["ls", "-l", f"{MANIFESTS}/02-secrets-pos-token.yaml"])
    assert mode.output.decode().startswith("-rw------- ")
    assert agent.listing(agent.node_container(f"{name}-workers-1")) == []
    # nothing the agent keeps or reports holds the plaintext
    assert TOKEN not in json.dumps(result.to_json())
    assert TOKEN not in (agent.data_dir / STATE_NAME).read_text()
    assert not any(TOKEN.encode() in p.read_bytes() for p in agent.data_dir.rglob("*.db*"))
    # opened again on the next pass, it matches what the node holds: nothing to do
    again = agent.apply(desired)
    assert again.ok and again.cluster(name).tasks == ()


@pytest.mark.parametrize(
    ("flaw", "reason"),
    [
        ("no-identity", "is encrypted and the age identity is unusable"),
        ("wrong-identity", "does not open: no age identity here opens it"),
        ("tampered-value", "does not open: stringData.token does not authenticate"),
        ("tampered-mac", "does not open: its MAC does not authenticate"),
    ],
)
def test_a_secret_that_does_not_open_refuses_the_state(
    agent: TestAgent, flaw: str, reason: str
) -> None:
    identity = generate()
    if flaw != "no-identity":
        key_file(agent.data_dir, generate() if flaw == "wrong-identity" else identity)
    sealed = sealed_for(identity)
    if flaw == "tampered-value":
        sealed = flip_value(sealed, "token")
    elif flaw == "tampered-mac":
        sealed = flip_value(sealed, "mac")
    name = agent.name("pos")
    files = [*manifests("a.yaml"), secret_manifest(sealed)]
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance, files=files))

    with pytest.raises(SecretRefused) as refused:
        agent.apply(desired)

    assert f"cluster '{name}': manifest 'pos-token.yaml'" in str(refused.value)
    assert reason in str(refused.value)
    assert agent.container_names(name) == [] and agent.network_names() == []
    with Inventory.open(agent.data_dir) as inventory:
        assert inventory.last_good_state() is None  # not even kept


def test_a_refused_secret_leaves_the_running_state_as_it_is(agent: TestAgent) -> None:
    identity = generate()
    key_file(agent.data_dir, identity)
    name = agent.name("pos")
    good = state(
        agent.appliance,
        cluster(name, appliance=agent.appliance, files=[secret_manifest(sealed_for(identity))]),
    )
    assert agent.apply(good).ok
    before = agent.container_names(name)
    bad = state(
        agent.appliance,
        cluster(
            name,
            appliance=agent.appliance,
            workers=2,
            files=[secret_manifest(flip_value(sealed_for(identity), "token"))],
        ),
        revision="rev-2",
    )

    with pytest.raises(SecretRefused):
        agent.apply(bad)

    assert agent.container_names(name) == before  # no second worker, nothing replaced
    with Inventory.open(agent.data_dir) as inventory:
        kept = inventory.last_good_state()
        titles = [entry.title for entry in inventory.steps()]
    assert kept is not None and kept.digest == good.digest
    assert titles and not any("workers-2" in t for t in titles)
