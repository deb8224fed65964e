"""``GET /v1/desired``: ETag, 304, and the long-poll that returns the moment a new state is
published for the appliance."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import httpx
import pytest

from agent.contract import DesiredState
from reconciler.store import ChangeRecord

from .conftest import Harness
from .fleets import WAVES, digests, release, revision, site

SITES = [site("grocery-1", ring="canary")]
ONE_WAVE = WAVES[1:]


def test_desired_state_carries_its_digest_as_etag(server: Harness) -> None:
    rel = release(revision("r1"), SITES)
    server.rollout.record_release(rel)
    agent = server.agent("grocery-1-edge")
    answer = agent.desired()
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    state = DesiredState.model_validate_json(answer.content)
    assert answer.headers["ETag"] == f'"{state.digest}"'
    assert state.digest == state.computed_digest() == digests(rel)["grocery-1-edge"]
    assert state.revision == rel.revision
    assert state == rel.sites["grocery-1"].states["grocery-1-edge"]


@pytest.mark.parametrize(
    "header",
    ['"{d}"', 'W/"{d}"', '"sha256:other", "{d}"', "*"],
)
def test_matching_if_none_match_gets_304(server: Harness, header: str) -> None:
    rel = release(revision("r1"), SITES)
    server.rollout.record_release(rel)
    agent = server.agent("grocery-1-edge")
    digest = digests(rel)["grocery-1-edge"]
    answer = agent.http.get(
        "/v1/desired", headers={**agent.auth, "If-None-Match": header.format(d=digest)}
    )
    assert answer.status_code == 304
    assert answer.headers["ETag"] == f'"{digest}"'
    assert answer.content == b""
    other = agent.http.get("/v1/desired", headers={**agent.auth, "If-None-Match": '"sha256:0"'})
    assert other.status_code == 200


def test_long_poll_without_news_answers_304_after_the_wait(server: Harness) -> None:
    rel = release(revision("r1"), SITES)
    server.rollout.record_release(rel)
    agent = server.agent("grocery-1-edge")
    started = time.monotonic()
    answer = agent.desired(etag=digests(rel)["grocery-1-edge"], wait=0.5)
    took = time.monotonic() - started
    assert answer.status_code == 304
    assert 0.45 <= took < 2.0


def test_long_poll_returns_the_moment_a_release_is_recorded(
    server: Harness,
    record_property: Callable[[str, object], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = release(revision("r1"), SITES, waves=ONE_WAVE)
    server.rollout.record_release(first)
    agent = server.agent("grocery-1-edge")
    old = digests(first)["grocery-1-edge"]
    second = release(revision("r2"), SITES, manifest="v2", waves=ONE_WAVE)

    # when the service notifies (after its commit), to tell the wake-up path apart
    notified: list[float] = []
    publish = server.rollout.notifier.publish

    def timed_publish(changes: Sequence[ChangeRecord]) -> None:
        notified.append(time.monotonic())
        publish(changes)

    monkeypatch.setattr(server.rollout.notifier, "publish", timed_publish)
    totals, wakeups = [], []
    for _ in range(3):
        answers: list[httpx.Response] = []
        returned = threading.Event()

        def poll(answers: list[httpx.Response], returned: threading.Event) -> None:
            answers.append(agent.desired(etag=old, wait=30))
            returned.set()

        poller = threading.Thread(target=poll, args=(answers, returned))
        poller.start()
        _wait_until(lambda: _open_longpolls(server) == 1)
        notified.clear()
        recording = time.monotonic()
        server.rollout.record_release(second)
        assert returned.wait(5), "the long-poll did not return"
        answered = time.monotonic()
        totals.append(answered - recording)
        wakeups.append(answered - notified[0])
        poller.join()
        assert answers[0].status_code == 200
        assert answers[0].json()["digest"] == digests(second)["grocery-1-edge"]
        # publish the first state again (a revert, served at once) for the next round
        back = release(revision(f"back-{len(totals)}"), SITES, waves=ONE_WAVE)
        server.rollout.record_release(back)
        second = release(revision(f"r2-{len(totals)}"), SITES, manifest="v2", waves=ONE_WAVE)
        assert agent.digest() == old
        agent.apply()

    record_property("longpoll_release_to_response_seconds", totals)
    record_property("longpoll_notify_to_response_seconds", wakeups)
    print(
        "long-poll: release handed over to response "
        + ", ".join(f"{x * 1000:.1f} ms" for x in totals)
        + "; notified (committed) to response "
        + ", ".join(f"{x * 1000:.1f} ms" for x in wakeups)
    )
    assert max(wakeups) < 0.5, wakeups
    assert max(totals) < 2.0, totals  # far below the 30 s the request would wait


def test_long_poll_of_an_appliance_without_state_wakes_when_it_is_released(
    server: Harness,
) -> None:
    agent = server.agent("grocery-1-edge")  # registered before any release: no state yet
    answers: list[httpx.Response] = []
    poller = threading.Thread(target=lambda: answers.append(agent.desired(wait=30)))
    poller.start()
    _wait_until(lambda: _open_longpolls(server) == 1)
    started = time.monotonic()
    rel = release(revision("r1"), SITES)
    server.rollout.record_release(rel)
    poller.join(5)
    assert time.monotonic() - started < 1
    assert answers[0].status_code == 200
    assert answers[0].json()["digest"] == digests(rel)["grocery-1-edge"]


def test_other_appliances_long_polls_are_not_woken(server: Harness) -> None:
    sites = [site("grocery-1", ring="canary"), site("store-2")]
    first = release(revision("r1"), sites, waves=ONE_WAVE)
    server.rollout.record_release(first)
    quiet = server.agent("store-2-edge")
    answers: list[httpx.Response] = []
    started = time.monotonic()
    poller = threading.Thread(
        target=lambda: answers.append(quiet.desired(etag=digests(first)["store-2-edge"], wait=1))
    )
    poller.start()
    _wait_until(lambda: _open_longpolls(server) == 1)
    # only grocery-1 changes
    server.rollout.record_release(
        release(revision("r2"), sites, manifests={"grocery-1": "v2"}, waves=ONE_WAVE)
    )
    poller.join(5)
    assert answers[0].status_code == 304
    assert time.monotonic() - started >= 0.9


def _open_longpolls(server: Harness) -> int:
    return server.rollout.notifier.waiting()


def _wait_until(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)
