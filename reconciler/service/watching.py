"""Noticing new commits: a local repository's refs through watchfiles (no polling), a remote
one by fetching on an interval and at once when a webhook pokes.

Errors (:class:`FetchFailed` of :mod:`reconciler.sources`) from fetching are temporary: the
loop logs them, keeps them as the source's status (the fleet status shows it) and tries again
at the next interval, while every site keeps the state it is served.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from watchfiles import Change, watch

from ..clocks import Clock, system_clock
from ..sources import Credentials, FetchFailed, GitRepository, Mirror, SourceError
from ..store import StoreError
from ..views import SourceView

log = logging.getLogger(__name__)


class Source:
    """A branch of a repository whose head the loop follows."""

    def __init__(self, git: GitRepository, branch: str) -> None:
        self.git = git
        self.branch = branch

    def head(self) -> str | None:
        """The branch's current commit, or None while the branch does not exist."""
        for ref in (f"refs/remotes/origin/{self.branch}", f"refs/heads/{self.branch}"):
            try:
                return str(self.git.resolve(ref).id)
            except SourceError:
                continue
        return None

    def changes(self, stop: threading.Event, poke: threading.Event) -> Iterator[None]:
        raise NotImplementedError


class LocalSource(Source):
    """A repository on this machine: its refs are watched, new commits seen at once."""

    def changes(self, stop: threading.Event, poke: threading.Event) -> Iterator[None]:
        gitdir = Path(self.git.repo.path)

        def refs_only(change: Change, path: str) -> bool:
            rel = (
                Path(path).relative_to(gitdir).as_posix() if path.startswith(str(gitdir)) else path
            )
            return rel.startswith("refs/") or rel in ("packed-refs", "HEAD")

        yield  # the current head, once at start
        # A ref change wakes the loop at once. The watcher also wakes every second with no
        # change, and the loop then reads the branch's ref again (one file): that closes the
        # gap between the first reconcile and the watcher starting.
        for _ in watch(
            gitdir,
            watch_filter=refs_only,
            stop_event=stop,
            debounce=50,
            step=20,
            rust_timeout=1000,
            yield_on_timeout=True,
        ):
            if stop.is_set():
                return
            yield


class RemoteSource(Source):
    """A remote repository, mirrored into a cache folder and fetched on an interval or when
    poked (by the push webhook). :meth:`fetch` once before the loop starts."""

    def __init__(
        self,
        url: str,
        cache: Path,
        branch: str,
        *,
        interval: float = 15.0,
        credentials: Credentials | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.mirror = Mirror(url, cache, credentials or Credentials())
        super().__init__(self.mirror.git, branch)
        self.url = url
        self.interval = interval
        self._clock = clock
        self._view = SourceView(url=self.mirror.shown, branch=branch, ok=True)

    def status(self) -> SourceView:
        return self._view

    def fetch(self) -> None:
        """Fetch the branch; a failure is logged, kept as the status and raised."""
        try:
            self.mirror.fetch(self.branch)
        except FetchFailed as e:
            before = self._view
            if before.error != str(e):
                log.warning("%s", e)
            self._view = before.model_copy(
                update={
                    "ok": False,
                    "error": str(e),
                    "failingSince": before.failingSince or self._clock(),
                }
            )
            raise
        if not self._view.ok:
            log.info("%s: fetched again", self.mirror.shown)
        self._view = self._view.model_copy(
            update={"ok": True, "error": None, "failingSince": None, "lastFetchedAt": self._clock()}
        )

    def changes(self, stop: threading.Event, poke: threading.Event) -> Iterator[None]:
        yield  # what the fetch before the start brought
        while not stop.is_set():
            poke.wait(self.interval)
            poke.clear()
            if stop.is_set():
                return
            try:
                self.fetch()
            except FetchFailed:
                continue  # the status says why; the last good state keeps being served
            yield


def open_source(
    repo: str,
    *,
    branch: str,
    cache: Path,
    interval: float,
    credentials: Credentials | None = None,
) -> Source:
    """A local path or a URL (https://, ssh://, git@host:path, file://)."""
    if "://" in repo or (":" in repo and "@" in repo.split(":", 1)[0]):
        return RemoteSource(repo, cache, branch, interval=interval, credentials=credentials)
    return LocalSource(GitRepository(Path(repo)), branch)


class Loop:
    """Reconciles the source's head whenever it moves. A head counts as seen once it was
    reconciled (published or recorded as failed); a git or store error leaves it to be
    tried again, backing off up to a minute."""

    def __init__(
        self,
        source: Source,
        reconcile: Callable[[str], object],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.reconcile = reconcile
        self.clock = clock
        self.stop = threading.Event()
        self.poke = threading.Event()
        self.seen: str | None = None
        self._failures = 0
        self._retry_at = 0.0

    def run(self) -> None:
        for _ in self.source.changes(self.stop, self.poke):
            self.step()

    def step(self) -> None:
        head = self.source.head()
        if head is None or head == self.seen or self.clock() < self._retry_at:
            return
        try:
            self.reconcile(head)
        except (SourceError, StoreError) as e:  # temporary: the same head is tried again
            self._failures += 1
            delay = min(2.0**self._failures, 60.0)
            self._retry_at = self.clock() + delay
            log.warning("reconciling %s failed, again in %.0f s: %s", head[:12], delay, e)
            return
        except Exception:  # a bug must not stop the loop, nor be retried in a busy loop
            log.exception("reconciling %s failed", head[:12])
        self.seen = head
        self._failures = 0
        self._retry_at = 0.0
