"""Template outputs a site's last render made, reused when the next render of that site runs
the same template on the same context: a fleet-wide change to one manifest re-renders only
that manifest at each site. Used by :mod:`.clusters`, kept by the :class:`~.sites.Renderer`.

An output is known by a digest of the template's name, source and the context values it
can read (the names it looks up), written with ``marshal`` (plain data only, key order kept:
a template may loop over a mapping in its order). A context holding anything else is never
reused, nor is the output of a template that may have changed a list, mapping or set (it
called a method that can: see the meter's ``changes``): the templates after it see the
change, so it renders every time. Within one render, an output one site made is reused by
the others whose template reads the same values (a manifest that names no site renders
once, not at every site); a template that draws a random number is not shared. An output
reused charges the site's memory meter what rendering it did, so a site breaks its limits
the same way whether its outputs were reused or not; one that would break them renders
again and fails as it would.
"""

from __future__ import annotations

import functools
import hashlib
import marshal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .limits import current

# marshal's version 2 writes no back-references, so equal contexts give equal bytes
_MARSHAL_VERSION = 2


# a template's checked output (or values made, written with marshal) and the memory its
# rendering charged (a plain tuple: memos come back from the rendering processes by the
# hundred thousand)
Output = tuple[str | bytes, int]


@dataclass
class SiteMemo:
    """One render of one site: the outputs its last render made (``previous``), and those
    this render made or reused (``made``: the site's memo once it rendered)."""

    previous: Mapping[bytes, Output] = field(default_factory=dict)
    made: dict[bytes, Output] = field(default_factory=dict)
    # the outputs every site of this render made that others may reuse (RenderMemo.shared)
    shared: dict[bytes, Output] = field(default_factory=dict)

    def reuse(self, key: bytes | None, *, shared: bool = False) -> str | None:
        """The output made for ``key`` last time (or, ``shared``, at another site of this
        render), charged to the current meter; None when there is none or it would break
        the memory limit (rendering it again fails)."""
        found = self._take(key, shared)
        return found if isinstance(found, str) else None

    def reuse_data(self, key: bytes | None) -> Any:
        """:meth:`reuse` for values kept with :meth:`keep_data`: a copy of its own."""
        found = self._take(key)
        return marshal.loads(found) if isinstance(found, bytes) else None

    def keep(self, key: bytes | None, text: str, charged: int, *, shared: bool = False) -> None:
        if key is not None:
            self.made[key] = (text, charged)
            if shared:
                self.shared[key] = (text, charged)

    def keep_data(self, key: bytes | None, value: Any, charged: int) -> None:
        """Keep plain data (anything else is not kept)."""
        if key is not None:
            try:
                self.made[key] = (marshal.dumps(value, _MARSHAL_VERSION), charged)
            except (ValueError, RecursionError):
                pass

    def _take(self, key: bytes | None, shared: bool = False) -> str | bytes | None:
        if key is None:
            return None
        found = self.previous.get(key)
        if found is None and shared:
            found = self.shared.get(key)
        if found is None:
            return None
        kept, charged = found
        meter = current()
        if meter.memory_left < charged:
            return None
        meter.memory_left -= charged
        self.made[key] = found
        if shared:
            self.shared[key] = found
        return kept


# the keys of mappings already seen, by identity (see context_key)
Parts = dict[int, tuple[Any, bytes]]

# a path a template follows from a name of its context: each step an attribute ("."), a
# constant subscript ("[]") or, last, a test that a constant is "in" it; what a template
# reads of its context: each name with its paths (one empty path: the whole value), as
# Sandbox.reads finds them
Path = tuple[tuple[str, str | int], ...]
Reads = tuple[tuple[str, tuple[Path, ...]], ...]

_MISSING = b"-"  # a step that found nothing (the template sees Undefined)


def read_key(context: Mapping[str, Any], reads: Reads, parts: Parts | None = None) -> bytes | None:
    """What a template that reads ``reads`` of ``context`` is known by: the values at the
    end of its paths (a manifest that reads ``cluster.mode`` renders once for every cluster
    of that mode, not once per cluster); None when they are not plain data."""
    try:
        written = marshal.dumps(
            [
                (name, [(path, _reached(context, name, path, parts)) for path in paths])
                for name, paths in reads
            ],
            _MARSHAL_VERSION,
        )
    except (ValueError, RecursionError):
        return None
    return hashlib.blake2b(written, digest_size=20).digest()


def _reached(context: Mapping[str, Any], name: str, path: Path, parts: Parts | None) -> bytes:
    """The key of where ``path`` from ``name`` leads, followed as Jinja's sandbox does: an
    attribute of a mapping is its item unless a method of that name exists (the template
    then reads the whole mapping through it), a subscript is its item or, missing, a method
    of that name; ``in`` a mapping is whether it holds that key. Where a step leads into
    anything else, the value so far is read whole. The key says how many steps were taken,
    and whether the last found nothing."""
    if name not in context:
        return b"0" + _MISSING
    value = context[name]
    taken = 0
    for kind, step in path:
        if type(value) is dict:
            if kind == "in":
                return b"%din%d" % (taken, step in value)
            if kind == "[]" and step in value:
                value = value[step]
            elif isinstance(step, str) and hasattr(dict, step):
                break
            elif step in value:
                value = value[step]
            else:
                return b"%d" % (taken + 1) + _MISSING
        elif type(value) is list and kind == "[]" and type(step) is int:
            if not -len(value) <= step < len(value):
                return b"%d" % (taken + 1) + _MISSING
            value = value[step]
        else:
            break
        taken += 1
    if type(value) is dict:  # known by its members' keys, kept in parts
        return b"%dd" % taken + _value_key(value, parts)
    return b"%dv" % taken + marshal.dumps(value, _MARSHAL_VERSION)  # written as it is


def context_key(context: Mapping[str, Any], parts: Parts | None = None) -> bytes | None:
    """What a template's whole context is known by; None when it is not plain data.

    Made of the keys of its values; a mapping of mappings (the other packs' values) is known
    by its members' keys, so the templates of a cluster, which see the same pack values
    under other names, write each of them once. ``parts`` keeps the keys of mappings
    already seen, by identity, for a caller that knows none of them changed since."""
    try:
        written = marshal.dumps(
            [(name, _value_key(value, parts)) for name, value in context.items()],
            _MARSHAL_VERSION,
        )
    except (ValueError, RecursionError):
        return None
    return hashlib.blake2b(written, digest_size=20).digest()


def _value_key(value: Any, parts: Parts | None) -> bytes:
    mapping = type(value) is dict
    if mapping and parts is not None:
        known = parts.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
    if mapping and value and all(type(v) is dict for v in value.values()):
        members = [(k, _value_key(v, parts)) for k, v in value.items()]
        written = b"d" + marshal.dumps(members, _MARSHAL_VERSION)
    else:  # raises ValueError unless it is plain data
        written = b"v" + marshal.dumps(value, _MARSHAL_VERSION)
    key = hashlib.blake2b(written, digest_size=20).digest()
    if mapping and parts is not None:
        parts[id(value)] = (value, key)  # held: its id is not reused meanwhile
    return key


def output_key(name: str, source: Any, context: bytes | None) -> bytes | None:
    """What an output is known by: the template's name and source (the values a layer
    sets, for values), and its context's key; None when they are not plain data."""
    if context is None:
        return None
    try:
        if type(source) is str:
            written = _template_key(name, source)
        else:
            written = marshal.dumps((name, source), _MARSHAL_VERSION)
    except (ValueError, RecursionError):
        return None
    return hashlib.blake2b(context + written, digest_size=20).digest()


@functools.lru_cache(maxsize=4096)
def _template_key(name: str, source: str) -> bytes:
    """A template's name and source, known by a digest made once (the same template renders
    at every site; its source can be long)."""
    written = marshal.dumps((name, source), _MARSHAL_VERSION)
    return hashlib.blake2b(written, digest_size=20).digest()


@dataclass
class RenderMemo:
    """Each site's outputs from its last successful render, and the outputs this render
    made that any site may reuse (dropped when the next render starts)."""

    sites: dict[str, dict[bytes, Output]] = field(default_factory=dict)
    shared: dict[bytes, Output] = field(default_factory=dict)

    def start(self, site: str) -> SiteMemo:
        return SiteMemo(previous=self.sites.get(site, {}), shared=self.shared)

    def next_render(self) -> None:
        self.shared = {}

    def rendered(self, site: str, memo: SiteMemo) -> None:
        self.sites[site] = memo.made

    def forget(self, keep: set[str]) -> None:
        """Drop the sites no longer in the fleet."""
        for site in [s for s in self.sites if s not in keep]:
            del self.sites[site]


@dataclass
class CheckedTexts:
    """Rendered texts already checked to be YAML mappings, by hash: those of this render and
    of the one before (a text seen in either is not checked again); older ones are dropped,
    so a reconciler running for months does not grow with every text it ever rendered."""

    current: set[int] = field(default_factory=set)
    previous: set[int] = field(default_factory=set)

    def __contains__(self, key: int) -> bool:
        if key in self.current:
            return True
        if key in self.previous:
            self.current.add(key)
            return True
        return False

    def add(self, key: int) -> None:
        self.current.add(key)

    def next_render(self) -> None:
        """A new render starts: what the one before last checked is forgotten."""
        self.previous, self.current = self.current, set()
