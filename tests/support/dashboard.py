"""The dashboard as the browser tests drive it: the example fleet in a real git repository,
reconciled by the real loop into the real server on 127.0.0.1, agents played over HTTP, and
Debian's headless Chromium driven through Selenium and Debian's chromedriver (nothing is
downloaded)."""

from __future__ import annotations

import asyncio
import base64
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.api import create_app
from reconciler.cli.common import builtin_packs
from reconciler.clocks import system_clock
from reconciler.rollout import RolloutService
from reconciler.service import Reconciler
from reconciler.service.reconciling import Outcome
from reconciler.sources import GitRepository
from reconciler.store import Store
from tests.service.agents import BOOTSTRAP, Agent
from tests.service.servers import ServerThread
from tests.support.fleet import FleetFiles
from tests.support.git import git
from tests.support.operators import operator_tokens
from tests.support.services import REPO_ROOT, unavailable

EXAMPLE = REPO_ROOT / "fleet-example"
T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Headless, as root, and quiet: without the background-networking flags Chromium keeps
# trying to reach the internet.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


class ExampleFleet:
    """The example fleet committed to a git repository and reconciled into a running server."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.repo = workdir / "fleet"
        shutil.copytree(EXAMPLE, self.repo)
        git(self.repo, "init", "-q", "-b", "main")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", "Example fleet: four sites in two waves")
        self.files = FleetFiles(self.repo)
        self.store = Store(f"sqlite:///{workdir / 'edgefleet.db'}")
        self.rollout = RolloutService(store=self.store, clock=system_clock, heartbeat_timeout=90)
        app = create_app(
            store=self.store,
            rollout=self.rollout,
            clock=system_clock,
            bootstrap_token=BOOTSTRAP,
            tick_interval=None,
            operators=operator_tokens(),
        )
        self.lag = Lag(app)
        self.server = ServerThread(self.lag).start()
        self.base_url = self.server.base_url
        self.reconciler = Reconciler(
            git=GitRepository(self.repo), rollout=self.rollout, builtin=builtin_packs()
        )
        self.agents: dict[str, Agent] = {}
        outcome = self.reconciler.reconcile("main")
        assert outcome.published, outcome.errors

    def commit(self, message: str, change: Callable[[FleetFiles], None]) -> Outcome:
        """Change the repository, commit, and reconcile the commit as the loop would."""
        change(self.files)
        git(self.repo, "commit", "-q", "-a", "-m", message)
        return self.reconciler.reconcile("main")

    def agent(self, appliance: str) -> Agent:
        """The appliance's agent, registered."""
        if appliance not in self.agents:
            agent = Agent(self.base_url, appliance)
            agent.register(ip="10.20.30.40", agentVersion="0.1.0").raise_for_status()
            self.agents[appliance] = agent
        return self.agents[appliance]

    def bring_up(self) -> None:
        """A rollout under way: the canary runs its cluster, scanned, patched and backed up;
        the admin promoted the last wave, whose hospital is provisioning and whose Berlin
        store is starting; restaurant-0088's appliance is not paired yet."""
        canary = self.agent("grocery-0412-vm")
        report(canary, phase="Running", tasks=[("create node", "done", 100)], day_two=True)
        self.rollout.promote("everyone", by="ada")
        for n, appliance in enumerate(("hospital-1-kvm-01", "hospital-1-kvm-02")):
            report(
                self.agent(appliance),
                phase="Provisioning",
                tasks=[
                    ("create network", "done", 100),
                    ("clone root disk", "running", 40 + 30 * n),
                    ("boot node", "pending", 0),
                ],
            )
        self.agent("hospital-1-kvm-03")
        report(self.agent("store-berlin-07-edge"), phase="Provisioning", tasks=[])

    def close(self) -> None:
        for agent in self.agents.values():
            agent.close()
        self.server.stop()
        self.store.close()


class Lag:
    """A slow network between the page and the server, for the live parts: once the app has
    answered a live part's fetch (htmx's ``HX-Request``), the answer is held ``seconds``
    before it leaves (``searches`` seconds instead for a search, ``q=``); ``answered`` is set
    when one was made."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seconds = 0.0
        self.searches = 0.0
        self.answered = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        live = scope["type"] == "http" and (b"hx-request", b"true") in scope["headers"]
        search = live and b"q=" in scope["query_string"]
        seconds = self.searches if search and self.searches else self.seconds
        if not (live and seconds):
            await self.app(scope, receive, send)
            return

        async def held(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.answered.set()
                await asyncio.sleep(seconds)
            await send(message)

        await self.app(scope, receive, held)


class Browser:
    """One headless Chromium with a fresh profile."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
        if missing:
            unavailable(f"browser tests need Debian's chromium and chromium-driver: no {missing}")
        self._profile = tempfile.mkdtemp(prefix="edgefleet-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={self._profile}", "--window-size=1280,900"):
            options.add_argument(flag)
        try:
            self.driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        except WebDriverException as e:
            shutil.rmtree(self._profile, ignore_errors=True)
            unavailable(f"headless Chromium did not start: {e.msg}")
        self.driver.set_page_load_timeout(20)

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    @property
    def path(self) -> str:
        return str(self.driver.current_url).removeprefix(self.base_url)

    def text(self, css: str = "body") -> str:
        """The element's text."""
        return self._fresh(css, lambda element: str(element.text))

    def click(self, css: str) -> None:
        """Clicks the element."""
        self._fresh(css, lambda element: element.click())

    def press(self, css: str, keys: str) -> None:
        """Sends the keys to the element."""
        self._fresh(css, lambda element: element.send_keys(keys))

    def _fresh(self, css: str, use: Callable[[WebElement], T]) -> T:
        """What `use` makes of the element. A live update may swap the element between
        finding and using it, so a stale one is found again."""
        for _ in range(20):
            try:
                return use(self.find(css))
            except StaleElementReferenceException:
                time.sleep(0.05)
        return use(self.find(css))

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def run(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, check: Callable[[], object], what: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = check()
            except WebDriverException:
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)

    def errors(self) -> list[str]:
        """What the page's console reported as errors since the last call."""
        logs: list[dict[str, Any]] = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        return [e["message"] for e in logs if e["level"] == "SEVERE"]

    def screenshot(self, path: Path) -> tuple[int, int]:
        """The whole page, however long, as a PNG; returns its width and height."""
        width, height = self.run(
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return int(width), int(height)

    def log_in(self, token: str) -> None:
        """Log in through the form, as a person with a keyboard would."""
        self.driver.delete_all_cookies()
        self.open("/login")
        field = self.find("#token")
        field.send_keys(token)
        field.submit()
        self.wait(lambda: not self.path.startswith("/login"), "the login to go through")

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)


def report(
    agent: Agent,
    *,
    phase: str,
    tasks: list[tuple[str, str, int]],
    health: str = "healthy",
    day_two: bool = False,
) -> None:
    """The agent fetches its state and reports each of its clusters in ``phase``, with its
    nodes, ``tasks`` (name, state, percent) and, with ``day_two``, a scan, a patch and a
    backup."""
    answer = agent.desired()
    document = answer.json() if answer.status_code == 200 else {"digest": None, "clusters": []}
    at = datetime.now(UTC).isoformat()
    clusters = []
    for cluster in document["clusters"]:
        mine = [n for n in cluster["nodes"] if n["appliance"] == agent.appliance]
        status: dict[str, Any] = {
            "name": cluster["name"],
            "phase": phase,
            "nodes": [{"name": n["name"], "phase": phase} for n in mine],
            "tasks": [{"name": t, "state": s, "progress": p} for t, s, p in tasks],
        }
        if day_two:
            status["scans"] = [
                {
                    "scan": "configuration",
                    "tool": "kube-bench",
                    "state": "done",
                    "at": at,
                    "passed": 112,
                    "warned": 9,
                    "failed": 2,
                    "findings": [
                        "1.1.12 etcd data directory is not owned by etcd:etcd",
                        "4.2.6 --protect-kernel-defaults is not set",
                    ],
                }
            ]
            status["patches"] = [
                {"name": n["name"], "state": "done", "at": at, "detail": "42 packages upgraded"}
                for n in mine
            ]
            status["backup"] = {
                "name": f"{cluster['name']}-nightly",
                "state": "done",
                "at": at,
                "detail": f"s3://acme-edge-backups/clusters/{cluster['name']}/nightly",
            }
        clusters.append(status)
    body = {
        "appliedDigest": document["digest"] if phase == "Running" else None,
        "health": health,
        "clusters": clusters,
        "agentVersion": "0.1.0",
    }
    agent.http.post("/v1/status", json=body, headers=agent.auth).raise_for_status()
