"""Summaries of py-spy's collapsed stacks (``py-spy record --threads --format raw``), for
bench/serve.py.

Each line of the input is ``thread (id): name;frame;...;frame COUNT`` from the outermost frame
inwards, a frame being ``function (path:line)``. A sample whose innermost frame waits (an idle
worker thread on its queue, the event loop in ``select``) is left out, so the shares are of the
time threads were running Python, in C code called from it, or waiting for the GIL.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

AREAS = (  # (label, path prefixes of a frame); the innermost frame that matches decides
    ("the store: SQLAlchemy and sqlite3", ("sqlalchemy/", "sqlite3/", "reconciler/store/")),
    ("thread-pool hand-off: anyio", ("anyio/", "concurrent/")),
    ("request validation: pydantic, FastAPI dependencies", ("pydantic", "fastapi/dependencies/",
                                                            "fastapi/_compat/")),
    ("HTTP/1.1: uvicorn and h11", ("uvicorn/", "h11/")),
    ("routing and middleware: FastAPI, Starlette", ("fastapi/", "starlette/")),
    ("the project's own code", ("reconciler/", "agent/")),
    ("asyncio event loop and sockets", ("asyncio/", "selectors.py", "socket.py")),
)  # fmt: skip
FRAME = re.compile(r"(.*) \((.*?)(?::\d+)?\)$")
SKIPPED_PROJECT = ("reconciler/__main__", "reconciler/cli/")  # the process's outer frames
WAITING = (  # innermost frames of a thread with nothing to do
    "threading.py:Condition.wait",
    "threading.py:Event.wait",
    "queue.py:Queue.get",
    "selectors.py:EpollSelector.select",
    "watchfiles/main.py:watch",
)


@dataclass(frozen=True)
class Summary:
    total: int
    idle: int  # samples left out: the thread was waiting for work
    threads: list[tuple[str, float]]  # by thread name
    areas: list[tuple[str, float]]  # by the innermost frame's area
    project: list[tuple[str, float]]  # project functions, inclusive, >= 1%
    own: list[tuple[str, float]]  # every function, self


def frame_name(frame: str, root: Path) -> str:
    """``function (path:line)`` as ``short/path.py:function``."""
    found = FRAME.match(frame)
    if not found:
        return frame
    function, path = found.groups()
    for marker in ("site-packages/", "/lib/python3.11/", str(root) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{function}"


PLUMBING = ("threading.py", "queue.py", "contextlib.py", "<frozen", "typing.py", "weakref.py")


def area_of(frames: list[str]) -> str:
    """The area of the innermost frame that is not generic plumbing (a lock, a queue): the
    pool lock SQLAlchemy waits on counts for the store, the one anyio waits on for anyio."""
    for frame in reversed(frames):
        if frame.startswith(PLUMBING):
            continue
        for label, prefixes in AREAS:
            if frame.startswith(prefixes):
                return label
    return "other"


def summarize(text: str, *, project: tuple[str, ...], root: Path) -> Summary:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = idle = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        thread, *frames = (frame_name(f, root) for f in stack.split(";"))
        if not frames or frames[-1] in WAITING:
            idle += n
            continue
        total += n
        threads[thread.split(": ", 1)[-1].strip()] += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
        areas[area_of(frames)] += n
    if total == 0:
        return Summary(0, idle, [], [], [], [])
    return Summary(
        total=total,
        idle=idle,
        threads=[(name, n / total) for name, n in threads.most_common()],
        areas=[(name, n / total) for name, n in areas.most_common()],
        project=[
            (name, n / total)
            for name, n in inclusive.most_common()
            if name.startswith(project)
            and not name.startswith(SKIPPED_PROJECT)
            and n / total >= 0.01
        ],
        own=[(name, n / total) for name, n in own.most_common()],
    )
