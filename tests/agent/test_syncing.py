"""The sync loop of ``edgefleet-agent run``: the site keeps running while the reconciler is
unreachable, drift is repaired on every pass, and a refused state (malformed, unsigned, not
signed by the reconciler's key, or changed on the way) is reported upstream with nothing
of it applied.

The reconciler here is either a closed port of 127.0.0.1 or a small real HTTP server on
127.0.0.1 that serves a crafted document: the real reconciler never serves a malformed one.
"""

from __future__ import annotations

import copy
import json
import random
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.apply.admission import InstalledNetwork
from agent.contract import digest_of
from agent.link.client import AgentLink, InsecureLink, LinkSettings
from agent.link.syncing import Backoff, SyncLoop, SyncSettings
from agent.secrets.keys import generate
from agent.signatures import HEADER, sign
from tests.support.appliances import TestAgent
from tests.support.secrets import key_file, sealed_for
from tests.support.states import cluster, secret_manifest, state

SERVER_KEY = Ed25519PrivateKey.generate()  # the reconciler's signing key


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once it is closed


def loop_for(agent: TestAgent, url: str, tmp_path: Path, last_good: Any = None) -> SyncLoop:
    link = AgentLink(
        LinkSettings(
            url,
            agent.appliance,
            "127.0.0.1",
            timeout=2,
            server_keys=(SERVER_KEY.public_key(),),
            insecure_http=True,  # a server of the test on 127.0.0.1
        )
    )
    return SyncLoop(
        settings=SyncSettings(
            appliance=agent.appliance, token_file=tmp_path / "token", hostname="test", wait=1
        ),
        link=link,
        apply=lambda s: agent.apply(s),
        last_good=last_good,
        backoff=Backoff(rng=random.Random(7)),
    )


def test_unreachable_reconciler_keeps_the_site_and_repairs_drift(
    agent: TestAgent, tmp_path: Path
) -> None:
    name = agent.name("pos")
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance, workers=1))
    assert agent.apply(desired).ok
    (tmp_path / "token").write_text("agent-token")
    loop = loop_for(agent, f"http://127.0.0.1:{closed_port()}", tmp_path, desired)
    before = sorted(agent.container_names(name))
    agent.node_container(f"{name}-workers-1").stop(timeout=1)  # drift, by hand

    pauses = [loop.step() for _ in range(3)]
    loop.link.close()
    assert sorted(agent.container_names(name)) == before  # still there, running again
    assert all(c.status == "running" for c in agent.containers(name))
    assert all(0 <= p <= cap for p, cap in zip(pauses, (1, 2, 4), strict=True))  # backoff


def test_backoff_grows_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(base=1, cap=8, rng=random.Random(1))
    bounds = [1, 2, 4, 8, 8, 8]
    waits = [backoff.next() for _ in bounds]
    assert all(0 <= w <= b for w, b in zip(waits, bounds, strict=True))
    assert len(set(waits)) == len(waits)  # jittered, not one fixed interval
    backoff.reset()
    assert backoff.next() <= 1


class Reconciler(BaseHTTPRequestHandler):
    document: bytes = b""
    signature: str | None = None  # None: signed with SERVER_KEY
    sent: bytes | None = None  # what arrives, when not the document signed (a hostile proxy)
    reports: list[dict[str, Any]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("ETag", '"' + json.loads(self.document)["digest"] + '"')
        signature = self.signature
        if signature is None:
            signature = sign(self.document, SERVER_KEY)
        if signature:
            self.send_header(HEADER, signature)
        self.end_headers()
        self.wfile.write(self.sent if self.sent is not None else self.document)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        self.reports.append(json.loads(self.rfile.read(length)))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def reconciler() -> Iterator[tuple[str, type[Reconciler]]]:
    handler = type("Handler", (Reconciler,), {"reports": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "flaw", ["unknown-field", "digest-mismatch", "escaping-manifest", "secret-for-another"]
)
def test_refused_state_is_reported_upstream_and_nothing_applied(
    agent: TestAgent, tmp_path: Path, reconciler: tuple[str, type[Reconciler]], flaw: str
) -> None:
    url, handler = reconciler
    name = agent.name("pos")
    files = None
    if flaw == "secret-for-another":  # sealed for an identity this appliance does not hold
        key_file(agent.data_dir)
        files = [secret_manifest(sealed_for(generate()))]
    document = state(
        agent.appliance, cluster(name, appliance=agent.appliance, files=files)
    ).model_dump(mode="json")
    if flaw == "unknown-field":
        document["clusters"][0]["replicas"] = 3
    elif flaw == "digest-mismatch":
        document["clusters"][0]["nodes"][0]["image"] = "someone/else:latest"
    elif flaw == "escaping-manifest":
        document["clusters"][0]["manifests"] = [
            {"layer": "addon", "pack": "x", "name": "../../etc/cron.d/x", "content": "a: 1\n"}
        ]
    handler.document = json.dumps(document).encode()
    (tmp_path / "token").write_text("agent-token")
    loop = loop_for(agent, url, tmp_path)
    loop.step()
    loop.link.close()
    assert agent.container_names(name) == []
    (report,) = handler.reports
    assert report["health"] == "unhealthy"
    assert report["events"][0]["message"].startswith("desired state refused:")
    if flaw != "unknown-field":
        assert report["error"]["digest"] == document["digest"]
    if flaw == "secret-for-another":
        message = report["error"]["message"]
        assert f"cluster '{name}': manifest 'pos-token.yaml' does not open" in message
        assert "no age identity here opens it" in message


def test_a_first_state_on_another_network_than_installed_is_refused_and_reported(
    agent: TestAgent, tmp_path: Path, reconciler: tuple[str, type[Reconciler]]
) -> None:
    """edge-installer --pod-cidr 10.50.0.0/16 --service-cidr 10.43.0.0/16, and a cluster on
    the default pod network: nothing of it starts, and the reconciler hears why."""
    url, handler = reconciler
    name = agent.name("pos")
    document = state(agent.appliance, cluster(name, appliance=agent.appliance))
    handler.document = json.dumps(document.model_dump(mode="json")).encode()
    (tmp_path / "token").write_text("agent-token")
    installed = InstalledNetwork(podCIDR="10.50.0.0/16", serviceCIDR="10.43.0.0/16")
    loop = loop_for(agent, url, tmp_path)
    loop.apply = lambda s: agent.apply(s, network=installed)
    loop.step()
    loop.link.close()
    assert agent.container_names(name) == []
    (report,) = handler.reports
    assert report["health"] == "unhealthy"
    assert report["error"]["digest"] == document.digest
    assert report["error"]["message"] == (
        f"desired state refused: cluster '{name}': pod CIDR 10.42.0.0/16 is not this "
        "appliance's 10.50.0.0/16 (edge-installer --pod-cidr): change the cluster's "
        "spec.config, or install the appliance again with --pod-cidr 10.42.0.0/16"
    )
    # installed for the cluster's own network, the same state applies
    same = InstalledNetwork(podCIDR="10.42.0.0/16", serviceCIDR="10.43.0.0/16")
    assert agent.apply(document, network=same).ok


def _changed(document: dict[str, Any]) -> bytes:
    """The document as a hostile proxy rewrites it: another image, the digest made to match."""
    changed = copy.deepcopy(document)
    changed["clusters"][0]["nodes"][0]["image"] = "attacker/k3s:latest"
    changed["digest"] = digest_of(
        {k: v for k, v in changed.items() if k not in ("revision", "digest")}
    )
    return json.dumps(changed).encode()


@pytest.mark.parametrize("attack", ["unsigned", "another-key", "changed-on-the-way"])
def test_a_state_the_reconciler_did_not_sign_is_refused_and_nothing_applied(
    agent: TestAgent, tmp_path: Path, reconciler: tuple[str, type[Reconciler]], attack: str
) -> None:
    url, handler = reconciler
    name = agent.name("pos")
    document = state(agent.appliance, cluster(name, appliance=agent.appliance)).model_dump(
        mode="json"
    )
    handler.document = json.dumps(document).encode()
    if attack == "unsigned":
        handler.signature = ""
    elif attack == "another-key":
        handler.signature = sign(handler.document, Ed25519PrivateKey.generate())
    else:
        handler.sent = _changed(document)
    (tmp_path / "token").write_text("agent-token")
    loop = loop_for(agent, url, tmp_path)
    loop.step()
    loop.link.close()
    assert agent.container_names(name) == []
    assert loop.state is None
    (report,) = handler.reports
    assert report["health"] == "unhealthy"
    message = report["events"][0]["message"]
    expected = {
        "unsigned": "desired state refused: desired state: not signed",
        "another-key": "desired state refused: desired state: bad signature: signed by 'ed25519:",
        "changed-on-the-way": "desired state refused: desired state: bad signature: changed "
        "after ed25519:",
    }[attack]
    assert message.startswith(expected), message
    assert report["error"]["digest"] == document["digest"]  # the digest its ETag named


def test_the_signed_state_is_applied(
    agent: TestAgent, tmp_path: Path, reconciler: tuple[str, type[Reconciler]]
) -> None:
    url, handler = reconciler
    name = agent.name("pos")
    desired = state(agent.appliance, cluster(name, appliance=agent.appliance))
    handler.document = desired.canonical_json()
    (tmp_path / "token").write_text("agent-token")
    loop = loop_for(agent, url, tmp_path)
    loop.step()
    loop.link.close()
    assert {c.labels["edgefleet.node"] for c in agent.containers(name)} == {
        node.name for node in desired.clusters[0].nodes
    }
    assert handler.reports[-1]["appliedDigest"] == desired.digest


def test_an_http_reconciler_is_refused_unless_the_agent_was_installed_for_a_lab() -> None:
    settings = LinkSettings("http://fleet.example.test", "a1", "10.0.0.1")
    with pytest.raises(InsecureLink, match="install with --insecure-http for a lab only"):
        AgentLink(settings)
