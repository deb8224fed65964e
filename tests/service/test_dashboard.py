"""The dashboard's HTTP side on the real server: the session cookie's flags, who may act and
how (an admin, confirmed, with the session's CSRF token and from the dashboard's own
origin, or with a Bearer header), the live-update stream, paged and filtered site lists,
and the descriptive fields (display names, cluster descriptions, commit authors) on the
API and in ``edgefleet status``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.contract import MaintenanceWindow
from reconciler.cli import main
from tests.support.dashboard import ExampleFleet
from tests.support.operators import ADMIN, ADMIN_TOKEN, VIEWER, VIEWER_TOKEN

from .conftest import Harness
from .fleets import digests, release, revision, site

COOKIE = "__Host-edgefleet-session"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleFleet]:
    fleet = ExampleFleet(Path(tmp_path_factory.mktemp("example")))
    try:
        yield fleet
    finally:
        fleet.close()


def log_in(base_url: str, token: str) -> tuple[httpx.Client, str]:
    """A browser-like client logged in with ``token``, and the CSRF token of its pages."""
    answer = httpx.post(f"{base_url}/login", data={"token": token, "next": "/"})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    # httpx keeps a Secure cookie for https only; a browser sends it to 127.0.0.1 as well
    session = answer.headers["set-cookie"].split(";")[0]
    client = httpx.Client(base_url=base_url, timeout=30, headers={"Cookie": session})
    page = client.get("/", headers={"Accept": "text/html"}).raise_for_status()
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert found is not None
    return client, found.group(1)


def test_login_sets_a_secure_httponly_samesite_cookie_without_the_token(server: Harness) -> None:
    answer = httpx.post(f"{server.base_url}/login", data={"token": VIEWER_TOKEN, "next": "/x"})
    assert answer.status_code == 303 and answer.headers["location"] == "/x"
    cookie = answer.headers["set-cookie"]
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert cookie.startswith(f"{COOKIE}=vera:")
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags
    assert VIEWER_TOKEN not in cookie

    refused = httpx.post(f"{server.base_url}/login", data={"token": "x" * 40})
    assert refused.status_code == 401 and "set-cookie" not in refused.headers
    away = httpx.post(f"{server.base_url}/login", data={"token": VIEWER_TOKEN, "next": "//evil"})
    assert away.headers["location"] == "/"


def test_pages_answer_only_operators(server: Harness) -> None:
    url = server.base_url
    browser = httpx.get(f"{url}/sites/x", headers={"Accept": "text/html"})
    assert browser.status_code == 303 and browser.headers["location"] == "/login?next=%2Fsites%2Fx"
    htmx = httpx.get(f"{url}/", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"] == "/login"
    assert httpx.get(f"{url}/live").status_code == 401
    assert httpx.get(f"{url}/", headers={"Authorization": "Bearer " + "x" * 40}).status_code == 401
    page = httpx.get(f"{url}/", headers=VIEWER)
    assert page.status_code == 200 and "<h1>Fleet</h1>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["server-timing"].startswith("app;dur=")
    assert httpx.get(f"{url}/static/htmx/htmx.min.js").status_code == 200


@pytest.mark.parametrize(
    ("who", "form", "headers", "status", "paused"),
    [
        ("admin", {"confirmed": "yes"}, {}, 403, False),  # no CSRF token
        ("admin", {"confirmed": "yes", "csrf": "0" * 64}, {}, 403, False),  # another one
        ("admin", {"confirmed": "yes", "csrf": "<csrf>"}, {"Origin": "http://e.test"}, 403, False),
        ("viewer", {"confirmed": "yes", "csrf": "<csrf>"}, {}, 403, False),
        ("admin", {"csrf": "<csrf>"}, {}, 200, False),  # asks first
        ("admin", {"confirmed": "yes", "csrf": "<csrf>"}, {}, 303, True),
        ("admin", {"confirmed": "yes"}, {"X-CSRF-Token": "<csrf>"}, 303, True),  # htmx's way
        ("bearer", {"confirmed": "yes"}, {}, 303, True),  # no cookie: nothing to forge
    ],
)
def test_pausing_from_the_dashboard_needs_an_admin_a_confirmation_and_csrf(
    server: Harness,
    who: str,
    form: dict[str, str],
    headers: dict[str, str],
    status: int,
    paused: bool,
) -> None:
    server.rollout.record_release(release(revision("r1"), [site("s1")]))
    if who == "bearer":
        client, csrf = httpx.Client(base_url=server.base_url, headers=ADMIN), ""
    else:
        client, csrf = log_in(server.base_url, ADMIN_TOKEN if who == "admin" else VIEWER_TOKEN)
    form = {k: v.replace("<csrf>", csrf) for k, v in form.items()}
    headers = {k: v.replace("<csrf>", csrf) for k, v in headers.items()}
    try:
        answer = client.post("/rollout/pause", data=form, headers=headers)
    finally:
        client.close()
    assert answer.status_code == status
    assert server.rollout.paused() is paused
    if status == 200:
        assert "Pause the rollout?" in answer.text


def test_the_live_stream_says_when_an_agent_reports(server: Harness) -> None:
    server.rollout.record_release(release(revision("r1"), [site("s1")]))
    agent = server.agent("s1-edge")
    page = server.http.get("/", headers={"Accept": "text/html"}).text
    found = re.search(r'data-stamp="([0-9a-f]+)"', page)
    assert found is not None
    url = f"{server.base_url}/live"
    with httpx.stream("GET", url, headers=VIEWER, timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "retry: 3000"
        agent.apply()  # while the page listens
        assert [next(lines) for _ in range(3)] == ["", "event: change", "data: 1"]

    # a page rendered before a report, listening after it, hears of it at once
    agent.apply()
    stale = {"since": found.group(1)}
    with httpx.stream("GET", url, headers=VIEWER, params=stale, timeout=10) as stream:
        lines = stream.iter_lines()
        assert [next(lines) for _ in range(3)] == ["retry: 3000", "", "event: change"]
        # the pulse's version counts every move of the stamp it saw: the report's commit
        # and the rollout tick's after it may be seen apart
        assert re.fullmatch(r"data: [1-9][0-9]*", next(lines))


def test_the_overview_counts_each_wave_by_where_its_sites_stand(server: Harness) -> None:
    window = MaintenanceWindow(days=["sun"], start="02:00", duration="1h")
    specs = [site("c1", ring="canary", windows=[window]), site("g1"), site("g2")]
    first = release(revision("r1"), specs)
    server.rollout.record_release(first)
    agents = [server.agent(a) for a in digests(first)]
    for _ in range(3):  # first states, canary first; no soak
        for agent in agents:
            agent.apply()
        server.rollout.tick()
    assert server.fleet()["rollout"]["state"] == "done"

    # new node images: the canary waits for its window (Sunday; it is Monday), g1 for it
    images = {"c1": "k3s:new", "g1": "k3s:new"}
    server.rollout.record_release(release(revision("r2"), specs, images=images))

    page = server.http.get("/", headers={"HX-Request": "true", "HX-Target": "overview"})
    assert '<section id="overview"' in page.text and "<h1>" not in page.text  # the part alone
    assert "1 waiting for a window" in page.text and "1 waiting</span>" in page.text
    rows = server.http.get("/v1/sites", params={"state": "rolling"}).json()["sites"]
    assert [(s["name"], s["waiting"][:40]) for s in rows] == [
        ("c1", "c1-edge: waiting for the maintenance win")
    ]


def test_the_site_list_pages_and_filters(server: Harness) -> None:
    specs = [site(f"s{i:03d}", ring="canary" if i < 5 else "general") for i in range(120)]
    server.rollout.record_release(release(revision("r1"), specs))
    server.agent("s001-edge").report(None, health="unhealthy")
    server.agent("s002-edge").report(None)

    def names(**query: str) -> list[str]:
        answer = server.http.get("/v1/sites", params=query).raise_for_status().json()
        return [s["name"] for s in answer["sites"]]

    third = server.http.get("/v1/sites", params={"page": 3}).json()
    assert (third["total"], third["pages"], len(third["sites"])) == (120, 3, 20)
    assert third["sites"][0]["name"] == "s100"
    assert names(label="ring=canary") == ["s000", "s001", "s002", "s003", "s004"]
    assert names(wave="canary", health="unhealthy") == ["s001"]
    assert names(health="healthy") == ["s002"]
    assert names(q="S11") == [f"s11{i}" for i in range(10)]
    assert names(state="failed") == []
    assert len(names(health="unknown")) == 50  # the first page of the 118 without agents


def test_the_api_and_status_name_appliances_and_describe_clusters(
    example: ExampleFleet,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    http = httpx.Client(base_url=example.base_url, headers=VIEWER)
    request.addfinalizer(http.close)
    hospital = http.get("/v1/sites/hospital-1").raise_for_status().json()
    names = {a["id"]: a["name"] for a in hospital["appliances"]}
    assert names["hospital-1-kvm-01"] == "Hospital 1 hypervisor 1"
    description = hospital["clusters"][0]["description"]
    assert description.startswith("Clinical workloads")
    assert [w["days"] for w in hospital["windows"]] == [["sat", "sun"]]
    fleet = http.get("/v1/fleet").raise_for_status().json()
    assert fleet["revision"]["author"] == "Test"
    assert fleet["revision"]["subject"] == "Example fleet: four sites in two waves"
    found = http.get("/v1/sites", params={"q": "BACK office"}).json()["sites"]
    assert [s["name"] for s in found] == ["restaurant-0088"]  # by display name

    token = tmp_path / "token"
    token.write_text(VIEWER_TOKEN)
    args = ["status", "--server", example.base_url, "--token-file", str(token)]
    assert main([*args, "--site", "hospital-1"]) == 0
    out = capsys.readouterr().out
    assert "Hospital 1 hypervisor 1" in out and "Clinical workloads" in out
    assert main(args) == 0
    assert "Test: Example fleet: four sites in two waves" in capsys.readouterr().out
