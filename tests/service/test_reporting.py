"""Each commit's fleet-level result reported to GitHub and GitLab, and notifications to
webhooks, received by real HTTP servers on 127.0.0.1. Every request is checked against the
forge's published description of its commit status endpoint (copied into tests/data/forges
with its source), and a receiver that stalls or answers 500 must not slow the rollout."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from reconciler.api.pushes import signature_ok
from reconciler.cli import main
from reconciler.reporting import Forge, Outbox, Reporter, Webhook
from tests.integration.conftest import git
from tests.support.operators import VIEWER_TOKEN
from tests.support.receivers import Received, Receiver

from .conftest import Harness
from .fleets import digests, release, revision, site
from .serving import STORE, Served, args
from .test_rollout import agents_for

DATA = Path(__file__).resolve().parents[1] / "data" / "forges"
CANARY = site("grocery-1", ring="canary")
SITES = [CANARY, site("store-2"), site("store-3")]
TOKEN = "ghp-test-token-0123456789abcdef"
SECRET = "notification-secret-for-tests"
LINK = "https://edgefleet.example.test/v1/fleet"


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.close()


def receiver(made: list[Receiver], **how: Any) -> Receiver:
    found = Receiver(**how)
    made.append(found)
    return found


def report_to(server: Harness, reporter: Reporter) -> Reporter:
    server.rollout.on_events = reporter
    return reporter


def roll_out(server: Harness, rev: str, **options: Any) -> None:
    """Record a release of SITES and play the agents until its rollout is done."""
    rel = release(rev, SITES, **options)
    agents = (
        agents_for(server, SITES) if not server.agents else {a.appliance: a for a in server.agents}
    )
    server.rollout.record_release(rel)
    for _ in range(10):
        for agent in agents.values():
            agent.apply()
        server.rollout.tick()
        if server.fleet()["rollout"]["state"] == "done":
            return
    raise AssertionError(f"the rollout of {rev[:7]} did not finish")


def halt(server: Harness, rev: str) -> None:
    """A release whose canary fails: the rollout halts."""
    rel = release(rev, SITES, manifest=f"broken-{rev}")
    server.rollout.record_release(rel)
    canary = next(a for a in server.agents if a.appliance == "grocery-1-edge")
    canary.report(None, error=digests(rel)["grocery-1-edge"]).raise_for_status()
    assert server.fleet()["rollout"]["state"] == "halted"


# -- the forges' published descriptions -----------------------------------------------------


def check_github(request: Received, *, owner: str, repo: str, sha: str) -> dict[str, Any]:
    """The request against GitHub's REST description of POST .../statuses/{sha}."""
    paths = YAML(typ="safe").load((DATA / "github-create-commit-status.yaml").read_text())
    ((template, item),) = paths.items()
    operation = item["post"]
    assert request.method == "POST"
    pattern = re.escape(template).replace(r"\{owner\}", "(?P<owner>[^/]+)")
    pattern = pattern.replace(r"\{repo\}", "(?P<repo>[^/]+)").replace(r"\{sha\}", "(?P<sha>.+)")
    path = request.path.removeprefix("/api/v3")  # an enterprise install's API URL
    match = re.fullmatch(pattern, path)
    assert match is not None, path
    assert match.groupdict() == {"owner": owner, "repo": repo, "sha": sha}
    (media,) = operation["requestBody"]["content"]
    assert request.headers["content-type"] == media == "application/json"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept"] == "application/vnd.github+json"
    body = json.loads(request.body)
    schema = operation["requestBody"]["content"][media]["schema"]
    jsonschema.validate(body, schema)
    assert set(body) <= set(schema["properties"])  # nothing the description does not name
    return dict(body)


def gitlab_description() -> tuple[str, str, dict[str, tuple[str, bool]], list[str]]:
    """Method, path, attributes (name: (type, required)) and states from GitLab's doc."""
    text = (DATA / "gitlab-post-commit-status.md").read_text()
    method, path = re.search(r"```\n(POST) (\S+)\n```", text).groups()  # type: ignore[union-attr]
    attributes: dict[str, tuple[str, bool]] = {}
    for row in re.findall(r"^\| (`.+?) *\| *(\S+) *\| *(yes|no) *\|", text, re.M):
        for name in re.findall(r"`(\w+)`", row[0]):
            attributes[name] = (row[1], row[2] == "yes")
    states_line = next(line for line in text.splitlines() if line.startswith("| `state`"))
    states = re.findall(r"`(\w+)`", states_line.split("following:")[1])
    return method, path, attributes, states


def check_gitlab(request: Received, *, project: str, sha: str) -> dict[str, Any]:
    method, template, attributes, states = gitlab_description()
    assert request.method == method
    pattern = re.escape(template).replace(":id", "(?P<id>[^/]+)").replace(":sha", "(?P<sha>.+)")
    match = re.fullmatch(pattern, request.path.removeprefix("/api/v4"))
    assert match is not None, request.path
    assert match.group("id") == project.replace("/", "%2F")  # a URL-encoded path
    assert match.group("sha") == sha
    assert request.headers["private-token"] == TOKEN
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.body)
    in_path = {"id", "sha"}
    for name, (_, required) in attributes.items():
        if required and name not in in_path:
            assert name in body, name
    for name, value in body.items():
        assert name in attributes and name not in in_path, name
        assert isinstance(value, float if attributes[name][0] == "float" else str), name
    assert body["state"] in states
    return dict(body)


# -- commit statuses ------------------------------------------------------------------------


def test_github_shows_each_commits_result_across_the_fleet(
    server: Harness, receivers: list[Receiver]
) -> None:
    github = receiver(receivers)
    forge = Forge("github", "acme/fleet", TOKEN, github.url + "/api/v3", link=LINK)
    reporter = report_to(server, Reporter(outbox=Outbox(store=server.store), forge=forge))
    try:
        good, failed, halted = revision("good"), revision("invalid"), revision("halted")
        # a good commit: pending while it rolls out, success once every wave is done
        server.rollout.record_release(release(good, SITES))
        (first,) = github.wait_for(1)
        body = check_github(first, owner="acme", repo="fleet", sha=good)
        assert body["state"] == "pending" and body["context"] == "edgefleet"
        assert body["target_url"] == LINK
        assert body["description"].startswith("rolling out: revision")
        roll_out(server, good)  # already recorded: plays the agents to the end
        assert reporter.outbox.wait_idle(10)
        bodies = [check_github(r, owner="acme", repo="fleet", sha=good) for r in github.requests]
        # as waves open the description follows; a status replaced before it went out is
        # not sent, so the newest is the last one the forge shows
        assert {b["state"] for b in bodies[:-1]} == {"pending"}
        assert bodies[-1]["state"] == "success"
        assert bodies[-1]["description"] == f"every wave is done: rollout of {good[:7]} done"
        # a commit that does not validate: failure, with the reason
        server.rollout.record_failure(failed, ["sites/store-2/site.yaml:4: bad timezone"])
        assert reporter.outbox.wait_idle(10)
        body = check_github(github.requests[-1], owner="acme", repo="fleet", sha=failed)
        assert body["state"] == "failure"
        assert "sites/store-2/site.yaml:4: bad timezone" in body["description"]
        assert len(body["description"]) <= 140
        # a halted rollout: failure, naming the wave and the sites
        halt(server, halted)
        assert reporter.outbox.wait_idle(10)
        last = check_github(github.requests[-1], owner="acme", repo="fleet", sha=halted)
        assert last["state"] == "failure" and "halted in wave canary" in last["description"]
        # every delivery is recorded and shown with the fleet's status
        reporting = server.fleet()["reporting"]
        assert reporting["counts"] == {"delivered": len(github.requests)}
        newest = reporting["recent"][0]
        assert newest["destination"] == "github acme/fleet"
        assert (newest["kind"], newest["event"], newest["revision"]) == (
            "commit-status", "failure", halted,
        )  # fmt: skip
        assert TOKEN not in json.dumps(reporting)
    finally:
        reporter.outbox.close()


def test_gitlab_shows_each_commits_result_across_the_fleet(
    server: Harness, receivers: list[Receiver]
) -> None:
    gitlab = receiver(receivers)
    forge = Forge("gitlab", "edge/fleet", TOKEN, gitlab.url + "/api/v4", link=LINK)
    reporter = report_to(server, Reporter(outbox=Outbox(store=server.store), forge=forge))
    try:
        good, failed = revision("good"), revision("invalid")
        server.rollout.record_release(release(good, SITES))
        body = check_gitlab(gitlab.wait_for(1)[0], project="edge/fleet", sha=good)
        assert (body["state"], body["name"], body["target_url"]) == ("running", "edgefleet", LINK)
        roll_out(server, good)
        assert reporter.outbox.wait_idle(10)
        body = check_gitlab(gitlab.requests[-1], project="edge/fleet", sha=good)
        assert body["state"] == "success"
        server.rollout.record_failure(failed, ["fleet.yaml:9: maxFailures 'ten' must be a count"])
        assert reporter.outbox.wait_idle(10)
        body = check_gitlab(gitlab.requests[-1], project="edge/fleet", sha=failed)
        assert body["state"] == "failed" and "maxFailures 'ten'" in body["description"]
    finally:
        reporter.outbox.close()


# -- webhooks -------------------------------------------------------------------------------


def test_webhooks_receive_signed_json_and_slack_messages(
    server: Harness, receivers: list[Receiver]
) -> None:
    plain, slack = receiver(receivers, status=200), receiver(receivers, status=200)
    hooks = [
        Webhook(plain.url + "/hooks/edgefleet", "json", SECRET, link=LINK),
        Webhook(slack.url + "/services/T0/B0/XXXX", "slack", link=LINK),
    ]
    reporter = report_to(server, Reporter(outbox=Outbox(store=server.store), webhooks=hooks))
    try:
        good, failed, halted = revision("good"), revision("invalid"), revision("halted")
        roll_out(server, good)
        server.rollout.record_failure(failed, ["fleet.yaml:9: bad"])
        halt(server, halted)
        assert reporter.outbox.wait_idle(10)
        events = [r.headers["x-edgefleet-event"] for r in plain.requests]
        assert events == ["wave.opened", "rollout.completed", "revision.failed", "rollout.halted"]
        for request in plain.requests:
            assert request.path == "/hooks/edgefleet"
            signature = request.headers["x-edgefleet-signature-256"]
            # signed exactly as the push webhook edgefleet receives is checked
            assert signature_ok(SECRET.encode(), request.body, {"x-hub-signature-256": signature})
            body = json.loads(request.body)
            assert body["event"] == request.headers["x-edgefleet-event"]
            assert set(body) == {"event", "revision", "at", "level", "message", "link"}
            assert body["link"] == LINK and body["at"].endswith("Z")
        halted_body = json.loads(plain.requests[-1].body)
        assert halted_body["revision"] == halted and halted_body["level"] == "error"
        assert "halted in wave canary" in halted_body["message"]
        texts = [json.loads(r.body) for r in slack.requests]
        assert all(set(t) == {"text"} for t in texts)
        assert texts[1]["text"].startswith(":white_check_mark: *rollout.completed* rollout of")
        assert f"(<{LINK}|fleet status>)" in texts[1]["text"]
        recent = server.fleet()["reporting"]["recent"]
        assert {d["destination"] for d in recent} == {
            f"webhook {plain.url}",
            f"webhook {slack.url}",
        }
        assert all("XXXX" not in d["destination"] for d in recent)  # a Slack URL is a secret
    finally:
        reporter.outbox.close()


# -- receivers that are down never hold the rollout up -------------------------------------


def timed(step: Any) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def test_a_receiver_that_stalls_or_fails_never_slows_the_rollout(
    server: Harness, receivers: list[Receiver]
) -> None:
    # the same rollout steps without reporting, for comparison
    agents = agents_for(server, SITES)
    quiet = [
        timed(lambda i=i: roll_out(server, revision(f"quiet-{i}"), manifest=f"q{i}"))
        for i in range(3)
    ]
    stalled = receiver(receivers, stall=True)
    failing = receiver(receivers, status=500)
    forge = Forge("github", "acme/fleet", TOKEN, stalled.url)
    hooks = [Webhook(failing.url + "/hook", "json", SECRET, frozenset({"rollout.completed"}))]
    outbox = Outbox(store=server.store, attempts=3, first_retry=0.2)
    report_to(server, Reporter(outbox=outbox, forge=forge, webhooks=hooks))
    try:
        loud = [
            timed(lambda i=i: roll_out(server, revision(f"loud-{i}"), manifest=f"l{i}"))
            for i in range(3)
        ]
        stalled.wait_for(1)  # the first status is held by the receiver the whole time
        assert max(loud) < 2 * max(quiet) + 0.5, (quiet, loud)
        failure = timed(lambda: server.rollout.record_failure(revision("bad"), ["x.yaml:1: bad"]))
        assert failure < 0.5
        assert {a: agents[a].digest() for a in agents} == digests(
            release(revision("loud-2"), SITES, manifest="l2")
        )
        # the webhook answering 500 is tried again, later each time, then given up
        first = failing.wait_for(1)[0]
        deadline = time.monotonic() + 10
        while sum(r.body == first.body for r in failing.requests) < 3:
            assert time.monotonic() < deadline, failing.requests
            time.sleep(0.05)
        tries = [r for r in failing.requests if r.body == first.body]
        gaps = [b.at - a.at for a, b in zip(tries, tries[1:], strict=False)]
        assert 0.15 < gaps[0] < gaps[1], gaps
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            recent = server.fleet()["reporting"]["recent"]
            loud_0 = revision("loud-0")
            states = {
                d["state"] for d in recent if d["kind"] == "webhook" and d["revision"] == loud_0
            }
            if states == {"failed"}:
                break
            time.sleep(0.05)
        recent = server.fleet()["reporting"]["recent"]
        gave_up = next(d for d in recent if d["kind"] == "webhook" and d["state"] == "failed")
        assert gave_up["attempts"] == 3 and gave_up["detail"].startswith("HTTP 500")
        # once the stalled receiver answers, the newest status of each commit goes out and
        # the older ones for the same commit are not sent after it
        stalled.release()
        assert outbox.wait_idle(20)
        for sha in (revision(f"loud-{i}") for i in range(3)):
            states = [json.loads(r.body)["state"] for r in stalled.requests if sha in r.path]
            assert states and states[-1] == "success", (sha, states)
    finally:
        stalled.release()
        outbox.close()


def test_a_full_queue_drops_and_says_so(server: Harness, receivers: list[Receiver]) -> None:
    stalled = receiver(receivers, stall=True)
    hooks = [Webhook(stalled.url, "json", SECRET)]
    outbox = Outbox(store=server.store, capacity=1)
    report_to(server, Reporter(outbox=outbox, webhooks=hooks))
    try:
        for i in range(4):
            server.rollout.record_failure(revision(f"bad-{i}"), ["x.yaml:1: bad"])
        stalled.wait_for(1)
        stalled.release()
        assert outbox.wait_idle(10)
        deadline = time.monotonic() + 5
        while (
            "dropped" not in server.fleet()["reporting"]["counts"] and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        recent = server.fleet()["reporting"]["recent"]
        dropped = next(d for d in recent if d["state"] == "dropped")
        assert re.fullmatch(r"\d results dropped: the reporting queue was full", dropped["detail"])
    finally:
        outbox.close()


# -- configured through serve's options ----------------------------------------------------


def test_serve_reports_to_the_forge_and_webhooks_it_is_given(
    served: Served,  # noqa: F811 (the fixture imported above)
    receivers: list[Receiver],
) -> None:
    github, hook = receiver(receivers), receiver(receivers, status=204)
    (served.work / "forge-token").write_text(TOKEN + "\n")
    (served.work / "notify-secret").write_text(SECRET)
    (served.work / "serve.yaml").write_text(
        f"notify-format: json\nnotify-secret-file: {served.work / 'notify-secret'}\n"
    )
    served.start(
        *args(served),
        "--config", str(served.work / "serve.yaml"),
        "--forge", "github",
        "--forge-repository", "acme/fleet",
        "--forge-api-url", github.url,
        "--forge-token-file", str(served.work / "forge-token"),
        env={"EDGEFLEET_NOTIFY_URL": hook.url + "/in", "EDGEFLEET_STATUS_URL": LINK},
    )  # fmt: skip
    head = git(served.fleet.root, "rev-parse", "HEAD")
    body = check_github(github.wait_for(1)[0], owner="acme", repo="fleet", sha=head)
    assert (body["state"], body["target_url"]) == ("pending", LINK)
    served.fleet.edit(STORE, "size: 1", "size: 2")
    served.commit("broken")
    broken = git(served.fleet.root, "rev-parse", "HEAD")
    deadline = time.monotonic() + 20
    while not any(broken in r.path for r in github.requests):
        assert time.monotonic() < deadline, served.log()
        time.sleep(0.05)
    body = check_github(github.requests[-1], owner="acme", repo="fleet", sha=broken)
    assert body["state"] == "failure" and "control-plane pool size" in body["description"]
    (failed,) = hook.wait_for(1)
    assert failed.headers["x-edgefleet-event"] == "revision.failed"
    assert json.loads(failed.body)["revision"] == broken
    (served.work / "viewer-token").write_text(VIEWER_TOKEN)
    status = subprocess.run(
        [sys.executable, "-m", "reconciler", "status", "--server", served.url,
         "--token-file", str(served.work / "viewer-token")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert re.search(r"^reporting +\d+ delivered", status.stdout, re.M), status.stdout
    assert f"github acme/fleet: failure {broken[:7]} delivered" in status.stdout


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--forge", "gitea"], "--forge must be github or gitlab (got gitea)"),
        (["--forge", "github"], "--forge needs --forge-repository"),
        (["--forge", "github", "--forge-repository", "fleet"], "must be owner/name on GitHub"),
        (["--forge", "gitlab", "--forge-repository", "g/p"], "--forge needs --forge-token-file"),
        (["--forge-repository", "a/b"], "--forge-repository needs --forge github or"),
        (["--notify-url", "https://hooks.example.test/x"], "JSON notifications are signed"),
        (["--notify-url", "https://h.example.test/x", "--notify-format", "teams"],
         "--notify-format must be json or slack"),
        (["--notify-url", "https://h.example.test/x", "--notify-format", "slack",
          "--notify-events", "rollout.done"], "--notify-events: unknown rollout.done"),
    ],
)  # fmt: skip
def test_serve_refuses_reporting_options_that_do_not_fit(
    served: Served,  # noqa: F811 (the fixture imported above)
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    code = main(["serve", served.repo, *args(served), *options])
    assert code == 2
    assert message in capsys.readouterr().err
