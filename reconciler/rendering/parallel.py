"""Rendering many sites on every core: the sites are split into chunks, rendered by this
process and forked ones (:func:`~reconciler.forking.shared_map`: each inherits the loaded
repository and the renderer's memo, so nothing is read or sent twice); theirs come back
pickled, with the template outputs they were made of, their canonical JSON and the
signatures of their served documents (when the renderer makes them).

Used for large renders only (a whole fleet, a fleet-wide change); a few sites render
faster in the calling process. The result is the same either way, byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.contract import DesiredState

from ..collector import paused_collector
from ..errors import Diagnostic, FleetError
from ..forking import shared_map, workers
from ..loading import FleetRepo
from ..packs import PackRegistry
from ..validation import build_index
from .memo import Output
from .sites import Renderer, render_repository

MIN_SITES = 400  # below this, forking costs more than it saves
CHUNK = 100


def render_sites(
    repo: FleetRepo,
    registry: PackRegistry,
    *,
    revision: str,
    sites: Sequence[str],
    renderer: Renderer,
    processes: int | None = None,
    min_sites: int = MIN_SITES,
) -> dict[str, dict[str, DesiredState]]:
    """:func:`render_repository` of ``sites``, on ``processes`` cores (default: all) when
    there are at least ``min_sites``. Raises FleetError with every problem, as it does."""
    count = processes if processes is not None else workers()
    renderer.memo.forget(set(repo.sites))
    renderer.checked.next_render()
    renderer.memo.next_render()
    # most sites rendering again from their last outputs cost little each: the workers would
    # save less than the parent spends receiving every state they made
    warm = sum(1 for site in sites if site in renderer.memo.sites)
    with paused_collector(set_aside=True):
        if count < 2 or len(sites) < min_sites or 2 * warm > len(sites):
            return render_repository(
                repo, registry, revision=revision, sites=sites, renderer=renderer
            )
        return _render_forked(repo, registry, revision, sites, renderer, count)


def _render_forked(
    repo: FleetRepo,
    registry: PackRegistry,
    revision: str,
    sites: Sequence[str],
    renderer: Renderer,
    count: int,
) -> dict[str, dict[str, DesiredState]]:
    chunks = [list(sites[i : i + CHUNK]) for i in range(0, len(sites), CHUNK)]
    out: dict[str, dict[str, DesiredState]] = {}
    problems: list[Diagnostic] = []
    index = build_index(repo)  # once: it reads every site
    # the first chunk here: the workers inherit the renderer's caches warm
    try:
        out.update(
            render_repository(
                repo, registry, revision=revision, sites=chunks[0], renderer=renderer, index=index
            )
        )
    except FleetError as e:
        problems += e.diagnostics

    def render_chunk(sites: list[str]) -> Chunk:
        """What one chunk rendered, pickled as one in a forked process (a text in a state
        and among the outputs is sent once); each process keeps the renderer's caches
        (compiled templates, pack files) across the chunks it renders."""
        try:
            rendered = render_repository(
                repo, registry, revision=revision, sites=sites, renderer=renderer, index=index
            )
        except FleetError as e:
            renderer.take_contents()
            renderer.take_signatures()
            return {}, {}, {}, {}, list(e.diagnostics)
        # the caller keeps the outputs (a forked process would only grow with them)
        memos = {site: renderer.memo.sites.pop(site) for site in rendered}
        return rendered, memos, renderer.take_contents(), renderer.take_signatures(), []

    for rendered, memos, contents, signed, failed in shared_map(render_chunk, chunks[1:], count):
        problems += failed
        out.update(rendered)
        renderer.memo.sites.update(memos)
        renderer.contents.update(contents)
        renderer.signatures.update(signed)
    if problems:
        raise FleetError(problems)
    return out


Chunk = tuple[
    dict[str, dict[str, DesiredState]],  # states by site and appliance
    dict[str, dict[bytes, Output]],  # each site's template outputs (memo.RenderMemo)
    dict[str, str],  # the states' canonical JSON by digest (Renderer.contents)
    dict[str, str],  # their served documents' signatures by digest (Renderer.signatures)
    list[Diagnostic],
]
