"""Hard limits on rendering one site (wall time, memory, output), enforced inside the sandbox
by a :class:`Meter` that every growing operation and loop step is charged to (one per thread,
so limits compose with rendering sites in several processes). Used by :mod:`.sandbox`."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2.runtime import Undefined
from jinja2.utils import Namespace

from ..errors import FleetError

MIB = 1024 * 1024
MAX_NESTING = 200  # levels of lists in lists a value may have when it is turned into text
STEP_BYTES = 8  # a chunk of output a loop step appends to its block's list
_SIZED = (str, bytes, list, tuple, dict, set, frozenset, range)
PLAIN = frozenset({*_SIZED, int, float, bool, type(None)})


@dataclass(frozen=True)
class RenderLimits:
    """What rendering one site may cost."""

    seconds: float = 10.0  # wall time of one site's templates
    memory: int = 256 * MIB  # bytes of values one site's templates may build, counted as built
    output: int = 1_000_000  # characters one template, or any one value, may hold

    def describe(self) -> str:
        return (
            f"{self.seconds:g} s, {self.memory // MIB} MiB, {self.output} characters per template"
        )


class LimitExceeded(Exception):
    """A template broke a rendering limit; raised from inside the template's code."""


class LimitBroken(FleetError):
    """A site's templates broke a rendering limit: the commit fails and rendering its other
    sites stops (they would only spend the same limits again)."""


class Meter:
    """What is left of one site's limits while its templates render."""

    __slots__ = ("changes", "deadline", "limits", "memory_left")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.memory_left = limits.memory
        # calls of methods that may change a list, mapping or set (see sandbox): what a
        # template saw is then not what the next one sees (memo)
        self.changes = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(
                f"rendering took longer than the {self.limits.seconds:g} s time limit"
            )

    def charge(self, nbytes: int) -> None:
        self.memory_left -= nbytes
        if self.memory_left < 0:
            raise LimitExceeded(
                f"templates built more than the {self.limits.memory // MIB} MiB memory limit"
            )

    def allow(self, size: int, what: str = "a value") -> None:
        """Refuse ``size`` characters or elements for one value: nothing larger than the
        output limit is ever built, so nothing larger can be output."""
        if size > self.limits.output:
            raise LimitExceeded(
                f"{what} would be larger than the {self.limits.output}-character output limit"
            )

    def produced(self, value: Any) -> Any:
        """Account for a value an operation has just built; returns it."""
        if type(value) is str:
            size = len(value)
            if size > self.limits.output:
                self.allow(size)
            self.charge(size + 49)  # what CPython spends on a str besides its characters
        elif isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
            self.allow(len(value))
            self.charge(sys.getsizeof(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            if value.bit_length() > self.limits.output:
                raise LimitExceeded("a number would be too large")
            self.charge(sys.getsizeof(value))
        return value

    def text(self, value: Any, what: str = "a value") -> int:
        """The characters ``value`` turns into as text, refused past the output limit."""
        size = len(value) if type(value) is str else text_size(value, self.limits.output)
        if size > self.limits.output:
            self.allow(size, what)
        return size

    def bounded(self, iterable: Any, *, step_bytes: int = 0) -> Iterator[Any]:
        """Iterate with the clock checked on every step (and ``step_bytes`` charged: what a
        step may leave behind), and at most the output limit of steps from an iterator that
        is not a sized collection (it may never end)."""
        limit = None if isinstance(iterable, _SIZED) else self.limits.output
        for count, item in enumerate(iterable):
            self.memory_left -= step_bytes
            if time.monotonic() > self.deadline or self.memory_left < 0:
                self.tick()
                self.charge(0)
            if limit is not None and count >= limit:
                raise LimitExceeded(
                    f"a sequence would be longer than the {limit}-element output limit"
                )
            yield item

    def materialized(self, iterable: Any) -> Any:
        """A collection stays as it is; any other iterable (a generator, a ``map``) becomes
        a bounded list, so a C function consuming it cannot run unbounded."""
        if type(iterable) in PLAIN or isinstance(iterable, (*_SIZED, Undefined)):
            return iterable
        if not isinstance(iterable, Iterable):
            return iterable
        return self.produced(list(self.bounded(iterable)))


_current: ContextVar[Meter | None] = ContextVar("edgefleet_render_meter", default=None)


def current() -> Meter:
    """The meter of the rendering in progress on this thread (outside :func:`metered`, as a
    bare environment in a test runs, a fresh one for each operation)."""
    return _current.get() or Meter(RenderLimits())


@contextmanager
def metered(limits: RenderLimits) -> Iterator[Meter]:
    """A meter for what runs inside; an enclosing one (a site around its templates) wins."""
    outer = _current.get()
    if outer is not None and outer.limits == limits:
        yield outer
        return
    token = _current.set(Meter(limits))
    try:
        meter = _current.get()
        assert meter is not None
        yield meter
    finally:
        _current.reset(token)


def text_size(value: Any, limit: int, *, indent: int = 0) -> int:
    """An estimate of ``len(str(value))`` (with ``indent`` characters per level, as JSON or
    pretty printing adds), counted no further than just past ``limit``. A value shared in
    several places counts in each, as it prints; one inside itself prints as ``[...]``."""
    if isinstance(value, str | bytes):
        return len(value)
    total = 0
    inside: set[int] = set()  # the containers on the path to the item
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth < 0:  # leaving a container
            inside.discard(item)
            continue
        if indent:
            total += indent * depth + 1
        if isinstance(item, str | bytes):
            total += len(item) + 2
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() * 31 // 100 + 2
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, Undefined):
            continue  # turning it into text raises the undefined error itself
        elif isinstance(item, Namespace | Mapping | list | tuple | set | frozenset):
            if id(item) in inside:
                total += 5
                continue
            if depth >= MAX_NESTING:
                raise LimitExceeded(f"a value is nested deeper than {MAX_NESTING} levels")
            inside.add(id(item))
            stack.append((id(item), -1))
            if isinstance(item, Namespace):
                item = item._Namespace__attrs
            children = (
                [x for pair in item.items() for x in pair]
                if isinstance(item, Mapping)
                else list(item)
            )
            total += 2 + 2 * len(children)
            stack.extend((child, depth + 1) for child in children)
        else:
            total += 64
        if total > limit:
            return total
    return total
