"""Rendering many sites on every core: the sites are split into chunks, rendered by this
process and forked ones (:func:`~reconciler.forking.shared_map`: each inherits the loaded
repository and the renderer's memo, so nothing is read or sent twice); theirs come back
pickled, with the template outputs they were made of and their canonical JSON. With a
presigner, the served documents of the states rendered are then signed on every core too
(the signatures come back; signing there takes OpenSSL's locks only to read the caches that
the signing this process does first filled).

Used for large renders only (a whole fleet, a fleet-wide change); a few sites render
faster in the calling process. The result is the same either way, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agent.contract import DesiredState

from ..collector import paused_collector
from ..errors import Diagnostic, FleetError
from ..forking import shared_map, workers
from ..loading import FleetRepo
from ..packs import PackRegistry
from ..validation import build_index
from .memo import Output
from .sites import Renderer, render_repository

# a stored content, its digest and the revision rendered -> the signature of the document
# served with no joins, or None (see reconciler.delivery.presigner)
Presigner = Callable[[str, str, str], str | None]
MIN_SITES = 400  # below this, forking costs more than it saves
CHUNK = 100
SIGN_CHUNK = 200  # documents signed a chunk at a time


def render_sites(
    repo: FleetRepo,
    registry: PackRegistry,
    *,
    revision: str,
    sites: Sequence[str],
    renderer: Renderer,
    processes: int | None = None,
    min_sites: int = MIN_SITES,
    presigner: Presigner | None = None,
) -> dict[str, dict[str, DesiredState]]:
    """:func:`render_repository` of ``sites``, on ``processes`` cores (default: all) when
    there are at least ``min_sites``. Raises FleetError with every problem, as it does.
    With ``presigner``, the served documents of the contents the renderer keeps are then
    signed (``renderer.signatures``)."""
    count = processes if processes is not None else workers()
    renderer.memo.forget(set(repo.sites))
    renderer.checked.next_render()
    renderer.memo.next_render()
    # most sites rendering again from their last outputs cost little each: the workers would
    # save less than the parent spends receiving every state they made
    warm = sum(1 for site in sites if site in renderer.memo.sites)
    with paused_collector(set_aside=True):
        if count < 2 or len(sites) < min_sites or 2 * warm > len(sites):
            out = render_repository(
                repo, registry, revision=revision, sites=sites, renderer=renderer
            )
        else:
            out = _render_forked(repo, registry, revision, sites, renderer, count)
        if presigner is not None:
            forks = count if len(renderer.contents) >= min_sites else 1
            _presign(renderer, presigner, revision, forks)
        return out


def _presign(renderer: Renderer, presign: Presigner, revision: str, count: int) -> None:
    """Sign the served documents of the states rendered and not signed yet, on ``count``
    cores: a fleet-wide change (rendered here, from the last outputs) has ten thousand."""
    unsigned = [d for d in renderer.contents if d not in renderer.signatures]
    chunks = [unsigned[i : i + SIGN_CHUNK] for i in range(0, len(unsigned), SIGN_CHUNK)]

    def sign_chunk(digests: list[str]) -> dict[str, str]:
        signed = {}
        for digest in digests:
            signature = presign(renderer.contents[digest], digest, revision)
            if signature is not None:
                signed[digest] = signature
        return signed

    if chunks:  # the first chunk here, first: the forked processes find OpenSSL's caches filled
        renderer.signatures.update(sign_chunk(chunks[0]))
    for signed in shared_map(sign_chunk, chunks[1:], count):
        renderer.signatures.update(signed)


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
            return {}, {}, {}, list(e.diagnostics)
        # the caller keeps the outputs (a forked process would only grow with them)
        memos = {site: renderer.memo.sites.pop(site) for site in rendered}
        return rendered, memos, renderer.take_contents(), []

    for rendered, memos, contents, failed in shared_map(render_chunk, chunks[1:], count):
        problems += failed
        out.update(rendered)
        renderer.memo.sites.update(memos)
        renderer.contents.update(contents)
    if problems:
        raise FleetError(problems)
    return out


Chunk = tuple[
    dict[str, dict[str, DesiredState]],  # states by site and appliance
    dict[str, dict[bytes, Output]],  # each site's template outputs (memo.RenderMemo)
    dict[str, str],  # the states' canonical JSON by digest (Renderer.contents)
    list[Diagnostic],
]
