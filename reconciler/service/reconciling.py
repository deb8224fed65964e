"""One linear reconcile of a commit: fetch → verify → load → validate → render → publish →
status.

Each step is one function; a failing step records the revision as failed with its errors and
stops, so every site keeps the last good state it is served. With allowed signers, a commit
no allowed key signed fails at verify: nothing of it is read further. An unexpected exception
(a bug some input reaches) fails the revision too, with a one-line reason; only a git or store
error is temporary and leaves the revision to be tried again. Rendering is incremental: only
sites whose inputs changed since the last good revision are rendered again (the tree diff and
per-site input digests of :mod:`reconciler.planning`), the rest keep their documents.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from agent.contract import DesiredState, MaintenanceWindow
from agent.errors import one_line

from ..collector import LaterCollection, paused_collector, settle
from ..errors import Diagnostic, FleetError, mask
from ..loading import ParseCache, load_repository
from ..models import parse_duration
from ..planning.impact import candidate_sites, input_digest
from ..rendering import Presigner, Renderer, RenderLimits, render_sites
from ..rollout import Release, RolloutService, SiteRelease, Wave
from ..sources import (
    AllowedSigners,
    GitRepository,
    GitTree,
    SourceError,
    Tree,
    UntrustedCommit,
    changed_paths,
)
from ..store import StoreError
from ..validation import Checked, build_index, check_repository, fleet_secrets

log = logging.getLogger(__name__)
SiteStates = dict[str, dict[str, DesiredState]]


class Reason(Enum):
    """Why a revision was not published."""

    UNTRUSTED = "signature check failed"
    INVALID = "validation failed"
    RENDER_FAILED = "rendering failed"
    CRASHED = "reconciling failed unexpectedly"


@dataclass(frozen=True)
class Outcome:
    revision: str
    published: bool
    reason: Reason | None = None
    errors: tuple[str, ...] = ()
    rendered_sites: int = 0
    seconds: float = 0.0


@dataclass
class _Good:
    """The last good revision, kept to render the next one incrementally."""

    tree: GitTree
    checked: Checked
    states: SiteStates
    digests: dict[str, str] = field(default_factory=dict)


class Reconciler:
    """Reconciles revisions of one repository into releases for the rollout service."""

    def __init__(
        self,
        *,
        git: GitRepository,
        rollout: RolloutService,
        builtin: tuple[Tree, str],
        clock: Callable[[], float] = time.monotonic,
        signers: AllowedSigners | None = None,
        limits: RenderLimits | None = None,
        settle: bool = False,
        presigner: Presigner | None = None,
    ) -> None:
        """``signers``: only commits they signed are reconciled (None: every commit);
        ``presigner``: signs the served documents of each revision published once it is
        rendered (see :func:`reconciler.delivery.presigner`; None: signed when served);
        ``settle``: after each revision published, set what lives on aside from the garbage
        collector and collect what earlier revisions dropped a little later
        (:class:`reconciler.collector.LaterCollection`; for a long-running server)."""
        self.git = git
        self.signers = signers
        self.rollout = rollout
        self.builtin = builtin
        self.clock = clock
        self.renderer = Renderer(limits or RenderLimits(), keep_contents=True)
        self.presigner = presigner
        self.cache: ParseCache = {}
        self.good: _Good | None = None
        self.last_attempted: str | None = None
        self._checked: Checked | None = None  # the revision being reconciled, once loaded
        self._settle = settle
        self.collection = LaterCollection()

    def seed(self, revision: str) -> bool:
        """Take ``revision`` (the last good one a restarted service had published) as the
        base the next revision is compared with, without publishing it again."""
        try:
            tree = self.git.tree(revision)
            checked = check_repository(tree, builtin=self.builtin, cache=self.cache)
            if checked.diagnostics:
                return False
            states, digests, _ = self._render(tree, checked, publishing=False)
        except Exception:  # without a base, the next revision renders every site
            log.debug("seeding from %s failed", revision[:12], exc_info=True)
            return False
        self.good = _Good(tree, checked, states, digests)
        if self._settle:
            settle()
        return True

    def reconcile(self, revision: str) -> Outcome:
        """Reconcile ``revision``; raises only SourceError and StoreError (temporary)."""
        started = self.clock()
        # fetch source: the commit's tree, straight from the object database
        tree = self.git.tree(revision)
        sha = tree.commit
        self.last_attempted = sha
        self._checked = None
        try:
            with paused_collector():
                with self.rollout.deferring_ticks():
                    outcome = self._reconcile(tree, started)
                # set aside before the collector comes back: its first collection would
                # otherwise walk everything made since the pause began (seconds, at the
                # moment the canaries are answered)
                if outcome.published and self._settle:
                    self.collection.published()
            return outcome
        except (SourceError, StoreError):
            raise
        except Exception as e:  # a bug some input reaches: the revision fails, the loop goes on
            log.debug("reconciling %s failed", sha[:12], exc_info=True)
            return self._failed(tree, Reason.CRASHED, [self._crash_reason(tree, e)], started)

    def _crash_reason(self, tree: GitTree, error: Exception) -> str:
        """One line, with the repository's sensitive values masked; when they cannot be
        known (the repository did not load), the error's type alone."""
        try:
            repo = self._checked.repo if self._checked is not None else load_repository(tree)
            secrets = fleet_secrets(repo, build_index(repo))
        except Exception:  # the same bug, or another: say no more than the type
            return f"internal error: {type(error).__name__} (details in the server's debug log)"
        return mask(f"internal error: {type(error).__name__}: {one_line(error)}", secrets)

    def _reconcile(self, tree: GitTree, started: float) -> Outcome:
        sha = tree.commit
        # verify: an allowed signer signed the commit
        if self.signers is not None:
            try:
                signer = self.signers.verify(self.git, sha)
            except UntrustedCommit as e:
                return self._failed(tree, Reason.UNTRUSTED, [str(e)], started)
            log.info("revision %s signed by %s", sha[:12], signer)
        # load and validate the whole repository (unchanged files come from the parse cache)
        checked = self._checked = check_repository(tree, builtin=self.builtin, cache=self.cache)
        if checked.diagnostics:
            return self._failed(tree, Reason.INVALID, _lines(checked.diagnostics), started)
        # render the sites whose inputs changed
        try:
            states, digests, rendered = self._render(tree, checked)
        except FleetError as e:
            return self._failed(tree, Reason.RENDER_FAILED, _lines(e.diagnostics), started)
        # publish: hand the whole release to the rollout, with the documents rendering made
        release = self._release(tree, checked, states)
        seconds = self.clock() - started
        self.rollout.record_release(release, reconcile_seconds=seconds)
        self.good = _Good(tree, checked, states, digests)
        log.info("revision %s published: %d sites rendered in %.2fs", sha[:12], rendered, seconds)
        return Outcome(sha, True, rendered_sites=rendered, seconds=seconds)

    def _failed(self, tree: GitTree, reason: Reason, errors: list[str], started: float) -> Outcome:
        sha = tree.commit
        self.rollout.record_failure(sha, errors, author=tree.author, subject=tree.subject)
        log.warning("revision %s failed: %s (%d errors)", sha[:12], reason.value, len(errors))
        return Outcome(sha, False, reason, tuple(errors), seconds=self.clock() - started)

    def _render(
        self, tree: GitTree, checked: Checked, *, publishing: bool = True
    ) -> tuple[SiteStates, dict[str, str], int]:
        index = build_index(checked.repo)
        sites = sorted(checked.repo.sites)
        good = self.good
        if good is None:
            candidates = set(sites)
        else:
            candidates = candidate_sites(changed_paths(good.tree, tree), [good.tree, tree])
        digests = dict(good.digests) if good is not None else {}
        todo = []
        for site in sites:
            if site in candidates or site not in digests:
                digest = input_digest(checked.repo, site, index, checked.registry)
                if good is None or digests.get(site) != digest or site not in good.states:
                    todo.append(site)
                digests[site] = digest
        self.renderer.take_contents()  # what a render that failed left
        self.renderer.take_signatures()
        rendered = render_sites(
            checked.repo,
            checked.registry,
            revision=tree.commit,
            sites=todo,
            renderer=self.renderer,
            presigner=self.presigner if publishing else None,  # a seed is not published
        )
        # unchanged sites keep their documents as they are, revision included: the revision
        # says where a document was last rendered, and its digest does not change
        previous = good.states if good is not None else {}
        states = {site: rendered.get(site) or previous[site] for site in sites}
        digests = {site: digests[site] for site in sites}
        return states, digests, len(todo)

    def _release(self, tree: GitTree, checked: Checked, states: SiteStates) -> Release:
        # Whether a change replaces nodes is judged by the rollout against what each
        # appliance is served now, not against the previous revision: a revision that never
        # reached a site must not make that site's first deployment wait for its window.
        assert checked.repo.fleet is not None
        rollout = checked.repo.fleet.model.spec.rollout
        sites = {}
        for name, files in checked.repo.sites.items():
            assert files.site is not None
            site = files.site.model
            sites[name] = SiteRelease(
                site=name,
                labels=dict(site.metadata.labels),
                timezone=site.spec.timezone,
                maintenance_windows=tuple(
                    MaintenanceWindow(days=list(w.days), start=w.start, duration=w.duration)
                    for w in site.spec.maintenanceWindows
                ),
                states=states[name],
                names={
                    doc.model.metadata.name: doc.model.metadata.tags["name"]
                    for doc in files.appliances
                    if "name" in doc.model.metadata.tags
                },
                descriptions={
                    doc.model.metadata.name: doc.model.metadata.description
                    for doc in files.clusters
                    if doc.model.metadata.description
                },
            )
        return Release(
            revision=tree.commit,
            author=tree.author,
            subject=tree.subject,
            waves=tuple(Wave(w.name, dict(w.selector.labels)) for w in rollout.waves),
            max_failures=rollout.maxFailures,
            soak_seconds=parse_duration(rollout.soak).total_seconds(),
            sites=sites,
            documents=self.renderer.take_contents(),
            signatures=self.renderer.take_signatures(),
            earlier=self._earlier(),
        )

    def _earlier(self) -> dict[str, DesiredState]:
        """The last good revision's states, by digest (most appliances are served one)."""
        if self.good is None:
            return {}
        return {s.digest: s for states in self.good.states.values() for s in states.values()}


def _lines(problems: list[Diagnostic]) -> list[str]:
    return [str(d) for d in sorted(problems)]
