"""Only the right appliance gets its state, end to end: the real reconciler, real agent
processes on the Docker engine, real git and ``ssh-keygen``. A takeover with the bootstrap
token is refused while the real agent keeps working; a token is rotated and an appliance
reset and registered again; an appliance enrolled with a one-time token converges and the
token cannot be replayed; a tampered or unsigned state is refused with nothing applied; an
unsigned commit never reaches an agent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.store import Store
from tests.service.agents import Agent
from tests.support.gitops import BOOTSTRAP, Loop, agent_command, edgefleet, wait_for
from tests.support.operators import VIEWER
from tests.support.proxies import EVIL_IMAGE, HostileProxy

SITE, APPLIANCE = "store-1", "store-1-a"
CLUSTER_FILE = f"sites/{SITE}/clusters/pos.yaml"


def appliance(loop: Loop) -> dict[str, Any]:
    """The appliance as its site shows it ({} before the site's first revision)."""
    listed = loop.site_status(SITE).get("appliances") or [{}]
    (found,) = listed  # type: ignore[misc]
    return dict(found)


def converged(loop: Loop) -> str | None:
    """The digest the appliance runs, once it runs what it is served."""
    found = appliance(loop)
    served, applied = found.get("servedDigest"), found.get("appliedDigest")
    return str(applied) if served and served == applied else None


def change_pods(loop: Loop, pods: int) -> None:
    """A change of store-1's kubelet arguments (it replaces the node)."""
    text = loop.fleet.read(CLUSTER_FILE)
    line = next((x for x in text.splitlines() if "kubeletArgs" in x), None)
    if line is None:
        wanted = f"        maxPods: 80\n        kubeletArgs: [max-pods={pods}]\n"
        loop.fleet.edit(CLUSTER_FILE, "        maxPods: 80\n", wanted)
    else:
        loop.fleet.edit(CLUSTER_FILE, line, f"        kubeletArgs: [max-pods={pods}]")
    loop.commit(f"store-1: {pods} pods per node")


def next_state(loop: Loop, before: str, what: str) -> str:
    return str(wait_for(lambda: (d := converged(loop)) != before and d, 60, what))


def token(loop: Loop) -> str:
    return (loop.work / APPLIANCE / "token").read_text().strip()


def works(url: str, agent_token: str) -> int:
    headers = {"Authorization": f"Bearer {agent_token}"}
    return httpx.get(f"{url}/v1/desired", headers=headers, timeout=10).status_code


def test_takeover_refused_rotation_and_reset_with_a_real_agent(loop: Loop) -> None:
    loop.start_agent(APPLIANCE)
    first = str(wait_for(lambda: converged(loop), 60, "the agent to converge"))

    # someone with the installer's command line tries to take the store over
    thief = Agent(loop.url, APPLIANCE, bootstrap=BOOTSTRAP)
    try:
        refused = thief.register(hostname="laptop", ip="10.66.6.6")
    finally:
        thief.close()
    assert refused.status_code == 409
    assert works(loop.url, token(loop)) == 200  # the real agent's token still works
    change_pods(loop, 90)
    second = next_state(loop, first, "the real agent to apply the next commit")
    assert appliance(loop)["hostname"] != "laptop"

    # the agent's token is rotated on the appliance: the old one stops working at once
    old = token(loop)
    rotated = agent_command(
        "agent.cli", "rotate-token", "--config", str(loop.work / APPLIANCE / "agent.yaml")
    )
    assert rotated.returncode == 0, rotated.stderr
    assert token(loop) != old
    assert works(loop.url, old) == 401
    change_pods(loop, 100)
    third = next_state(loop, second, "the agent to apply a commit with its new token")

    # an admin resets the appliance: its token stops working, and its next registration
    # (the agent's own, with its registration token) pairs it again, once
    before_reset = token(loop)
    reset = edgefleet("appliance", "reset", APPLIANCE, "--server", loop.url)
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.strip() == (
        f"reset {APPLIANCE} (by ada): its token no longer works; its next registration pairs "
        "it again"
    )
    assert works(loop.url, before_reset) == 401
    wait_for(lambda: (loop.work / APPLIANCE / "token").is_file() and token(loop) != before_reset,
             30, "the agent to register again")  # fmt: skip
    change_pods(loop, 110)
    next_state(loop, third, "the re-registered agent to apply the next commit")
    thief = Agent(loop.url, APPLIANCE, bootstrap=BOOTSTRAP)
    try:
        assert thief.register().status_code == 409  # once only
    finally:
        thief.close()
    with Store(f"sqlite:///{loop.work / 'reconciler.db'}").read() as tx:
        events = [e.message for e in tx.events.recent(appliance=APPLIANCE, limit=1000)]
    assert any(m.startswith(f"registration of {APPLIANCE} from laptop") for m in events)
    assert any(m.startswith(f"{APPLIANCE} reset by ada") for m in events)
    assert any(m.startswith(f"{APPLIANCE} rotated its token") for m in events)


@pytest.mark.parametrize("loop", [{"serve": ["--no-bootstrap-token"]}], indirect=True)
def test_an_appliance_enrolled_with_a_one_time_token(loop: Loop, tmp_path: Path) -> None:
    issued = edgefleet("appliance", "enroll", APPLIANCE, "--ttl", "1h", "--server", loop.url)
    assert issued.returncode == 0, issued.stderr
    one_time = issued.stdout.strip()
    assert len(one_time.splitlines()) == 1
    root = tmp_path / "appliance"
    install = [
        "agent.installer", "-i", "127.0.0.1", "-d", APPLIANCE, "-a", loop.url, "--insecure-http",
        "--server-key", str(loop.work / "signing.pem.pub"), "--registration-token", one_time,
        "--docker-host", loop.engine.base_url, "--target", str(root),
    ]  # fmt: skip
    done = agent_command(*install)
    assert done.returncode == 0, done.stderr
    assert "--insecure-http: for a lab only" in done.stderr
    # the agent runs with what the installer wrote: its token and the server's key
    config = loop.agent_config(APPLIANCE).model_copy(
        update={
            "tokenFile": str(root / "etc/edgefleet/agent-token"),
            "serverKey": str(root / "etc/edgefleet/server-key.pem"),
        }
    )
    loop.start_agent(APPLIANCE, config=config, registration_token=None)
    wait_for(lambda: converged(loop), 60, "the enrolled agent to converge")
    # the same token, replayed, pairs nothing: neither this appliance nor another
    replayed = agent_command(*install[:-1], str(tmp_path / "again"))
    assert replayed.returncode == 1
    assert "registration failed: /v1/register: 401" in replayed.stderr
    stranger = Agent(loop.url, "restaurant-7-a", bootstrap=one_time)
    try:
        assert stranger.register().status_code == 401
    finally:
        stranger.close()
    assert converged(loop)


def test_a_tampered_or_unsigned_state_is_refused_with_nothing_applied(loop: Loop) -> None:
    proxy = HostileProxy().start()
    try:
        proxy.mode = "tamper"
        loop.start_agent(APPLIANCE, http_proxy=proxy.url)
        error = wait_for(lambda: appliance(loop).get("error"), 60, "the refusal to be reported")
        assert "desired state refused: desired state: bad signature: changed after" in str(error)
        assert loop.containers(APPLIANCE) == {}
        assert not loop.client.containers.list(
            all=True, filters={"label": f"edgefleet.appliance={APPLIANCE}"}
        )

        proxy.mode = "strip"
        wait_for(lambda: "not signed" in str(appliance(loop).get("error")), 60,
                 "the unsigned state's refusal to be reported")  # fmt: skip
        assert loop.containers(APPLIANCE) == {}

        proxy.mode = "pass"  # the same link, untouched: the agent applies the real state
        wait_for(lambda: converged(loop), 60, "the agent to converge")
        images = {
            c.attrs["Config"]["Image"]
            for c in loop.client.containers.list(
                filters={"label": f"edgefleet.appliance={APPLIANCE}"}
            )
        }
        assert images == {loop.image}
        assert EVIL_IMAGE not in images
        assert proxy.altered >= 2
    finally:
        proxy.stop()


@pytest.mark.parametrize("loop", [{"signed": True}], indirect=True)
def test_an_unsigned_commit_never_reaches_an_agent(loop: Loop) -> None:
    loop.start_agent(APPLIANCE)
    first = str(wait_for(lambda: converged(loop), 60, "the agent to converge on a signed commit"))
    nodes = loop.containers(APPLIANCE)

    loop.fleet.edit(CLUSTER_FILE, "        maxPods: 80\n",
                    "        maxPods: 80\n        kubeletArgs: [max-pods=90]\n")  # fmt: skip
    loop.git("add", "-A")
    loop.git("-c", "commit.gpgsign=false", "commit", "-qm", "unsigned: more pods")
    sha = loop.git("rev-parse", "HEAD")

    def failure() -> dict[str, Any] | None:
        found = loop.fleet_status().get("lastFailure")
        return found if isinstance(found, dict) and found.get("sha") == sha else None

    failed = wait_for(failure, 30, "the unsigned commit to be recorded as failed")
    assert (
        failed["errors"]
        == [  # type: ignore[index]
            f"commit {sha[:12]} is not signed; only signed commits are taken"
        ]
    )
    time.sleep(3)  # more than a long-poll and a rollout tick
    assert converged(loop) == first
    assert loop.containers(APPLIANCE) == nodes
    revisions = httpx.get(f"{loop.url}/v1/revisions", headers=VIEWER, timeout=5).json()
    assert revisions["revisions"][0]["outcome"] == "failed"

    loop.git("commit", "-q", "--allow-empty", "-m", "the same change, signed")
    next_state(loop, first, "the signed commit to reach the agent")
    assert loop.containers(APPLIANCE) != nodes
