"""`edgefleet serve` as a process over a real git repository changed with the `git` command;
agents are played by HTTP clients (tests/service/agents.py)."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx

from tests.support.git import git
from tests.support.operators import VIEWER, VIEWER_TOKEN

from .agents import Agent
from .serving import SECRET, STORE, Served, args


def test_commit_wakes_a_waiting_long_poll(served: Served) -> None:
    served.start(*args(served))
    agent = served.agent("store-1-a")
    before = agent.digest()
    assert before is not None

    served.fleet.edit(STORE, '"30 2 * * *"', '"45 2 * * *"')
    git(served.fleet.root, "add", "-A")
    answers: list[httpx.Response] = []
    waiter = threading.Thread(target=lambda: answers.append(agent.desired(etag=before, wait=20)))
    waiter.start()
    time.sleep(0.5)  # the long-poll is waiting
    committed = time.monotonic()
    git(served.fleet.root, "commit", "-qm", "store-1 backs up later")
    waiter.join(timeout=25)
    latency = time.monotonic() - committed
    (answer,) = answers
    assert answer.status_code == 200
    assert answer.json()["digest"] != before
    print(f"commit to long-poll answer: {latency * 1000:.0f} ms")
    assert latency < 2.0


def test_broken_commit_keeps_the_last_good_state_and_shows_the_errors(served: Served) -> None:
    served.start(*args(served))
    agent = served.agent("store-1-a")
    good = agent.digest()
    served.fleet.edit(STORE, "size: 1", "size: 2")
    served.commit("broken: two control-plane nodes")
    sha = git(served.fleet.root, "rev-parse", "HEAD")

    def failure() -> dict[str, object] | None:
        found = served.fleet_status().get("lastFailure")
        return found if isinstance(found, dict) and found.get("sha") == sha else None

    deadline = time.monotonic() + 10
    while (found := failure()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert found is not None, served.log()
    assert found["short"] == sha[:7]
    errors = found["errors"]
    assert isinstance(errors, list)
    line = served.fleet.line_of(STORE, "size: 2")
    assert f"{STORE}:{line}: control-plane pool size must be 1, 3 or 5 (got 2)" in errors
    assert agent.digest() == good


def wait_until(check: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.1)


def first_rollout(canary: Agent, later: Agent) -> tuple[str | None, str | None]:
    """The first revision through both waves: the canary reports, then the second wave."""
    first_canary = canary.digest()
    assert first_canary is not None
    assert later.digest() is None  # its wave waits for the canary
    assert canary.report(first_canary, cluster="pos").status_code == 202
    wait_until(lambda: later.digest() is not None)
    first_later = later.digest()
    assert later.report(first_later, cluster="pos").status_code == 202
    return first_canary, first_later


def test_revert_returns_the_previous_digest_at_once(served: Served) -> None:
    served.start(*args(served))
    canary, later = served.agent("store-1-a"), served.agent("restaurant-7-a")
    first_canary, first_later = first_rollout(canary, later)
    served.fleet.edit("profiles/store-1.0.0.yaml", "presets: [small]", "presets: [large]")
    served.commit("stores: large preset")
    wait_until(lambda: canary.digest() != first_canary)
    assert later.digest() == first_later  # the second wave waits for the canary
    assert canary.report(canary.digest(), cluster="pos").status_code == 202
    wait_until(lambda: later.digest() != first_later)
    assert later.report(later.digest(), cluster="pos").status_code == 202

    git(served.fleet.root, "revert", "--no-edit", "HEAD")
    # both get the digests they ran healthy before, the second wave without waiting for the
    # canary to report
    wait_until(lambda: later.digest() == first_later and canary.digest() == first_canary)
    assert (canary.digest(), later.digest()) == (first_canary, first_later)


def test_kill_9_and_restart_continues_with_the_same_tokens(served: Served) -> None:
    served.start(*args(served))
    canary, later = served.agent("store-1-a"), served.agent("restaurant-7-a")
    first_canary, first_later = first_rollout(canary, later)
    # a fleet-wide change: the canary gets it, the second wave waits for its report
    served.fleet.edit("profiles/store-1.0.0.yaml", "presets: [small]", "presets: [large]")
    served.commit("stores: large preset")
    deadline = time.monotonic() + 10
    while canary.digest() == first_canary and time.monotonic() < deadline:
        time.sleep(0.1)
    new_canary = canary.digest()
    assert new_canary != first_canary
    assert later.digest() == first_later

    served.kill()
    served.start(*args(served))  # same database, same repository
    assert canary.digest() == new_canary  # the old token still works
    assert later.digest() == first_later  # still held back by the canary
    assert canary.report(new_canary, cluster="pos").status_code == 202
    deadline = time.monotonic() + 10
    while later.digest() == first_later and time.monotonic() < deadline:
        time.sleep(0.1)
    assert later.digest() != first_later
    revisions = served.fleet_status()["revision"]
    assert isinstance(revisions, dict)
    assert revisions["sha"] == git(served.fleet.root, "rev-parse", "HEAD")


def test_remote_repository_is_fetched_when_the_webhook_says_so(served: Served) -> None:
    remote = served.work / "remote.git"
    git(served.work, "clone", "-q", "--bare", str(served.fleet.root), str(remote))
    served.repo = f"file://{remote}"
    (served.work / "secret").write_text(SECRET)
    # options from a config file and from the environment
    (served.work / "serve.yaml").write_text(
        f"db: sqlite:///{served.work / 'remote.db'}\nfetch-interval: 3600\n"
        f"cache-dir: {served.work / 'cache'}\ntick-interval: 0.2\n"
        f"signing-key: {served.work / 'signing.pem'}\n"
    )
    served.start(
        "--config", str(served.work / "serve.yaml"),
        "--listen", f"127.0.0.1:{served.port}",
        "--bootstrap-token-file", str(served.work / "bootstrap"),
        "--operator-token-file", str(served.work / "operators"),
        env={"EDGEFLEET_WEBHOOK_SECRET_FILE": str(served.work / "secret")},
    )  # fmt: skip
    agent = served.agent("store-1-a")
    before = agent.digest()
    served.fleet.edit(STORE, '"30 2 * * *"', '"40 2 * * *"')
    served.commit("store-1 backs up at 2:40")
    git(served.fleet.root, "push", "-q", str(remote), "main")

    body = b'{"ref": "refs/heads/main"}'
    forged = httpx.post(f"{served.url}/v1/hooks/git", content=body,
                        headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})  # fmt: skip
    assert forged.status_code == 401
    time.sleep(1)
    assert agent.digest() == before  # a forged call fetched nothing (the interval is an hour)

    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    good = httpx.post(f"{served.url}/v1/hooks/git", content=body,
                      headers={"X-Hub-Signature-256": f"sha256={signature}",
                               "X-GitHub-Event": "push"})  # fmt: skip
    assert good.status_code in (200, 202, 204)
    deadline = time.monotonic() + 10
    while agent.digest() == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert agent.digest() != before


def test_day_two_results_reach_the_site_status(served: Served) -> None:
    served.start(*args(served))
    canary = served.agent("store-1-a")
    digest = canary.digest()
    report = {
        "appliedDigest": digest,
        "health": "healthy",
        "clusters": [
            {
                "name": "pos",
                "phase": "Running",
                "scans": [
                    {"scan": "configuration", "tool": "kube-bench", "state": "done",
                     "at": "2026-11-23T04:00:00Z", "passed": 52, "warned": 11, "failed": 3,
                     "findings": ["FAIL 1.1.1: API server pod file permissions"],
                     "toolVersion": "v0.9.4", "benchmark": "k3s-cis-1.7", "errored": 2,
                     "errors": ["ERROR 4.2.1: failed to run: \"/bin/cat config.yaml\""]},
                ],
                "backup": {"name": "pos-20261125T023000Z", "state": "done",
                           "at": "2026-11-25T02:31:00Z", "detail": "nas /srv/backups"},
                "patches": [{"name": "pos-main-1", "state": "done", "at": "2026-11-22T03:05:00Z",
                             "detail": "22.04.4 -> 22.04.5"}],
            }
        ],
    }  # fmt: skip
    assert canary.http.post("/v1/status", json=report, headers=canary.auth).status_code == 202
    site = httpx.get(f"{served.url}/v1/sites/store-1", timeout=5, headers=VIEWER).json()
    (cluster,) = site["clusters"]
    assert [(s["scan"], s["failed"]) for s in cluster["scans"]] == [("configuration", 3)]
    (scan,) = cluster["scans"]
    assert (scan["toolVersion"], scan["benchmark"], scan["errored"]) == ("v0.9.4", "k3s-cis-1.7", 2)
    assert cluster["backup"]["name"] == "pos-20261125T023000Z"
    assert cluster["patches"][0]["detail"] == "22.04.4 -> 22.04.5"
    shown = subprocess.run(
        [sys.executable, "-m", "reconciler", "status", "--server", served.url, "--site", "store-1"],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "EDGEFLEET_TOKEN": VIEWER_TOKEN},
    )  # fmt: skip
    assert shown.returncode == 0
    assert "scan configuration (kube-bench v0.9.4 k3s-cis-1.7)" in shown.stdout
    assert "52 pass, 11 warn, 3 fail, 2 could not run" in shown.stdout


def longpolls_open(served: Served) -> float:
    metrics = httpx.get(f"{served.url}/metrics", timeout=5, headers=VIEWER).text
    (line,) = [x for x in metrics.splitlines() if x.startswith("edgefleet_longpolls_open ")]
    return float(line.split()[1])


def test_a_long_poll_frees_its_slot_when_the_agent_hangs_up(served: Served) -> None:
    served.start(*args(served))
    agent = served.agent("store-1-a")
    digest = agent.digest()
    headers = {"authorization": f"Bearer {agent.token}", "if-none-match": f'"{digest}"'}
    with socket.create_connection(("127.0.0.1", served.port)) as hung_up:
        request = (
            "GET /v1/desired?wait=60 HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        )
        hung_up.sendall(request.encode())
        deadline = time.monotonic() + 5
        while longpolls_open(served) < 1:
            assert time.monotonic() < deadline, "the long-poll never started waiting"
            time.sleep(0.05)
    closed = time.monotonic()

    while longpolls_open(served) > 0:
        assert time.monotonic() - closed < 5, "the long-poll kept its slot after the hang-up"
        time.sleep(0.05)
    print(f"slot freed {(time.monotonic() - closed) * 1000:.0f} ms after the hang-up")
    # a long-poll of a connected agent still waits, and still wakes on a commit
    answers: list[httpx.Response] = []
    waiter = threading.Thread(target=lambda: answers.append(agent.desired(etag=digest, wait=20)))
    waiter.start()
    time.sleep(0.5)
    assert longpolls_open(served) == 1
    served.fleet.edit(STORE, '"30 2 * * *"', '"45 2 * * *"')
    served.commit("store-1 backs up later")
    waiter.join(timeout=25)
    assert [a.status_code for a in answers] == [200]


def test_sigterm_answers_waiting_long_polls_and_exits_cleanly(served: Served) -> None:
    served.start(*args(served))
    agent = served.agent("store-1-a")
    digest = agent.digest()
    answers: list[httpx.Response] = []
    waiter = threading.Thread(target=lambda: answers.append(agent.desired(etag=digest, wait=60)))
    waiter.start()
    deadline = time.monotonic() + 5
    while longpolls_open(served) < 1:
        assert time.monotonic() < deadline, "the long-poll never started waiting"
        time.sleep(0.05)
    assert served.process is not None
    stopping = time.monotonic()

    os.killpg(served.process.pid, signal.SIGTERM)

    waiter.join(timeout=10)
    assert [a.status_code for a in answers] == [304]  # "unchanged": the agent polls again
    # uvicorn re-raises the signal once it has shut down, as a service manager expects
    assert served.process.wait(timeout=10) in (0, -signal.SIGTERM)
    took = time.monotonic() - stopping
    assert took < 2, f"shutting down took {took:.1f} s"
    assert "Traceback" not in served.log(), served.log()
