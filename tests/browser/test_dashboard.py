"""The dashboard in a real browser, on the example fleet: what a viewer sees, a site's
clusters and tasks, a live update without a reload, an admin's pause and resume, a failed
commit's errors, and no way in without a token.

The screenshot the first test takes is the README's; with EDGEFLEET_UPDATE_DOCS=1 it is
written to docs/dashboard-fleet.png."""

from __future__ import annotations

import os
import shutil
import struct
import time
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.keys import Keys

from tests.support.dashboard import Browser, ExampleFleet, report
from tests.support.operators import ADMIN_TOKEN, VIEWER_TOKEN
from tests.support.services import REPO_ROOT

pytestmark = pytest.mark.slow
SCREENSHOT = REPO_ROOT / "docs" / "dashboard-fleet.png"
LAPTOP, PHONE = (1280, 900), (390, 844)


@pytest.fixture(scope="module", autouse=True)
def rolling(fleet: ExampleFleet) -> None:
    fleet.bring_up()


def test_a_viewer_logs_in_and_sees_the_fleet(
    fleet: ExampleFleet, browser: Browser, tmp_path: Path
) -> None:
    browser.driver.set_window_size(*LAPTOP)
    browser.log_in(VIEWER_TOKEN)
    assert browser.path == "/"
    overview = browser.text("#overview")
    assert "Example fleet: four sites in two waves" in overview
    assert "by Test" in overview
    assert "canary" in overview and "everyone" in overview
    assert "1 soaking" in overview  # the canary wave's bar says it in words
    assert browser.text("#count-healthy") == "5" and browser.text("#count-unpaired") == "1"
    rows = browser.driver.find_elements("css selector", "#sites tbody tr")
    assert len(rows) == 4
    assert "vera" in browser.text("header") and "viewer" in browser.text("header")
    assert not browser.driver.find_elements("css selector", "#pause-rollout")  # viewers see

    unlabelled = browser.run(
        "return [...document.querySelectorAll('input:not([type=hidden]), select, button')]"
        ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')"
        " && !e.textContent.trim()).map(e => e.outerHTML)"
    )
    assert unlabelled == []
    picture = tmp_path / "fleet.png"
    browser.wait(lambda: "on" in browser.text("#live-status"), "live updates to connect")
    size = browser.screenshot(picture)
    assert _png_size(picture) == size and size[0] >= 1200 and size[1] > LAPTOP[1]
    if os.environ.get("EDGEFLEET_UPDATE_DOCS"):
        shutil.copyfile(picture, SCREENSHOT)

    # the list filters as one types, without a reload, and the address says so
    browser.run("window.stillHere = true")
    browser.press("#f-q", "hypervisor 2")  # an appliance's display name
    browser.wait(lambda: browser.text("#sites-count").startswith("1 site"), "the search")
    assert "hospital-1" in browser.text("#sites tbody")
    assert browser.path == "/?q=hypervisor+2"
    assert browser.run("return window.stillHere") is True

    browser.driver.set_window_size(*PHONE)  # a phone: nothing wider than the screen
    browser.open("/")
    page = "document.documentElement"
    assert browser.run(f"return {page}.scrollWidth <= {page}.clientWidth")
    assert browser.errors() == []  # nothing refused by the content security policy either


def test_following_a_site_shows_its_clusters_and_tasks(browser: Browser) -> None:
    browser.driver.set_window_size(*LAPTOP)
    browser.log_in(VIEWER_TOKEN)
    browser.press("#f-q", "hospital")
    browser.wait(lambda: browser.text("#sites-count").startswith("1 site"), "the search")
    link = browser.driver.find_element("link text", "hospital-1")
    link.send_keys(Keys.ENTER)  # by keyboard
    browser.wait(lambda: browser.path == "/sites/hospital-1", "the site page")
    appliances = browser.text("#appliances-heading + .table-wrap")
    assert "Hospital 1 hypervisor 1" in appliances  # the name tag is the display name
    assert "In-Use" in appliances and "Ready" in appliances and "10.20.30.40" in appliances
    cluster = browser.text("#cluster-hospital-1-clinical")
    assert "Provisioning" in cluster
    assert "three-hypervisor HA control plane" in cluster  # the cluster's description
    assert "clone root disk" in cluster
    progress = browser.run(
        "return [...document.querySelectorAll('#cluster-hospital-1-clinical .tasks progress')]"
        ".map(p => p.value)"
    )
    assert sorted(progress) == [0, 0, 40, 70, 100, 100]
    assert "Sat, Sun at 01:00 for 4h" in browser.text("#site-live")
    assert browser.text("#next-window")


def test_a_live_update_arrives_when_an_agent_reports(fleet: ExampleFleet, browser: Browser) -> None:
    browser.log_in(VIEWER_TOKEN)
    browser.open("/sites/restaurant-0088")
    row = "#appliance-restaurant-0088-edge"
    assert "Unpaired" in browser.text(row)
    browser.wait(lambda: "on" in browser.text("#live-status"), "live updates to connect")
    browser.run("window.stillHere = true")

    # a slow network: the registration is read for the page and is still on its way when
    # the report comes; the report shows all the same
    fleet.lag.seconds = 3.0
    agent = fleet.agent("restaurant-0088-edge")
    assert fleet.lag.answered.wait(10), "the page did not fetch itself again"
    report(agent, phase="Running", tasks=[("create node", "done", 100)])
    browser.wait(lambda: "Ready" in browser.text(row), "the registration to show")

    browser.wait(lambda: "In-Use" in browser.text(row), "the report to show")
    assert "Running" in browser.text("#clusters-heading ~ .cluster")
    assert browser.run("return window.stillHere") is True  # no reload


def test_a_search_is_not_undone_by_a_refresh_on_its_way(
    fleet: ExampleFleet, browser: Browser
) -> None:
    browser.driver.set_window_size(*LAPTOP)
    browser.log_in(VIEWER_TOKEN)
    browser.wait(lambda: "on" in browser.text("#live-status"), "live updates to connect")
    # a slow network: the list's own refresh, asked for as the live updates ask for it, is
    # answered 2 s late; a search typed meanwhile 3 s late. Both would replace the same
    # list, so whichever came second would be dropped: the search, unless the refresh stops
    fleet.lag.seconds, fleet.lag.searches = 2.0, 3.0
    try:
        browser.run(
            "const part = document.getElementById('sites');"
            "htmx.ajax('GET', part.getAttribute('data-live'),"
            " {source: part, target: part, swap: 'outerHTML'}).catch(() => {})"
        )
        browser.press("#f-q", "hypervisor 2")
        browser.wait(lambda: browser.text("#sites-count").startswith("1 site"), "the search")
        time.sleep(1)  # any other answer on its way has come
        assert browser.text("#sites-count").startswith("1 site")
        assert browser.path == "/?q=hypervisor+2"
    finally:
        fleet.lag.seconds, fleet.lag.searches = 0.0, 0.0


def test_an_admin_pauses_then_resumes_the_rollout(fleet: ExampleFleet, browser: Browser) -> None:
    browser.log_in(ADMIN_TOKEN)
    assert "ada" in browser.text("header")
    assert not fleet.rollout.paused()

    browser.press("#pause-rollout", Keys.ENTER)
    alert = browser.wait(lambda: browser.driver.switch_to.alert, "the confirmation")
    assert "Pause the rollout?" in alert.text
    alert.accept()
    browser.wait(lambda: "Paused by ada" in browser.text("#rollout-state"), "the pause")
    assert fleet.rollout.paused()
    browser.wait(
        lambda: "Rollout paused by ada." in browser.text("#overview .notice"), "the notice"
    )
    # the overview fetches itself again when anything changes (the pause itself, a report):
    # the answer to the admin's action stays until the next action
    browser.run("document.getElementById('overview').shown = true")
    report(fleet.agent("grocery-0412-vm"), phase="Running", tasks=[("create node", "done", 100)])
    browser.wait(
        lambda: browser.run("return !document.getElementById('overview').shown"), "a refresh"
    )
    assert "Rollout paused by ada." in browser.text("#overview .notice")
    assert "Paused by ada" in browser.text("#rollout-state")

    browser.click("#resume-rollout")
    browser.driver.switch_to.alert.dismiss()  # changed one's mind: nothing happens
    assert fleet.rollout.paused()
    browser.click("#resume-rollout")
    browser.driver.switch_to.alert.accept()
    browser.wait(lambda: "Paused" not in browser.text("#rollout-state"), "the resume")
    assert not fleet.rollout.paused()

    def events() -> str:
        return str(
            browser.run("return document.querySelector('#overview details.events').textContent")
        )

    browser.wait(lambda: "rollout resumed by ada" in events(), "the events")
    assert "rollout paused by ada" in events()
    assert browser.errors() == []


def test_a_failed_commit_shows_its_file_line_errors(fleet: ExampleFleet, browser: Browser) -> None:
    cluster = "sites/grocery-0412/clusters/grocery-0412-store.yaml"
    line = fleet.files.line_of(cluster, "size: 1")

    outcome = fleet.commit(
        "Grow the grocery control plane", lambda f: f.edit(cluster, "size: 1", "size: 2")
    )

    assert not outcome.published
    browser.log_in(VIEWER_TOKEN)
    assert "failed with 1 error" in browser.text("#overview")
    browser.driver.find_element("link text", "Revisions").click()
    browser.wait(lambda: browser.path == "/revisions", "the revisions page")
    failed = browser.text(f"#revision-{outcome.revision[:7]}")
    assert "Grow the grocery control plane" in failed and "failed" in failed
    assert f"{cluster}:{line}: control-plane pool size must be 1, 3 or 5 (got 2)" in failed
    good = browser.text(".revision:last-child")
    assert "published" in good and "4 sites changed" in good


def test_without_a_token_the_dashboard_refuses(fleet: ExampleFleet, browser: Browser) -> None:
    browser.driver.delete_all_cookies()
    browser.open("/sites/hospital-1")
    assert browser.path == "/login?next=%2Fsites%2Fhospital-1"
    assert "hospital-1" not in browser.text("main")
    browser.find("#token").send_keys("not-a-token-of-anyone-0123456789abcdef")
    browser.find("#token").submit()
    browser.wait(lambda: "That token was refused." in browser.text("main"), "the refusal")
    assert browser.driver.get_cookies() == []
    for path in ("/", "/live", "/revisions", "/v1/fleet"):
        assert httpx.get(fleet.base_url + path).status_code == 401, path


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height
