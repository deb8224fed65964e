"""The :class:`Tree` protocol and its directory implementation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class Tree(Protocol):
    """A read-only file tree with posix paths relative to its root."""

    def files(self, prefix: str = "") -> Iterator[str]:
        """Every file path below ``prefix`` (a folder path without trailing slash, or "")."""
        ...

    def size(self, path: str) -> int: ...

    def read(self, path: str) -> bytes: ...

    def exists(self, path: str) -> bool: ...


class DirectoryTree:
    """A folder on disk, read as a :class:`Tree`. Hidden entries (``.git``) are skipped."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def files(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return
        for folder, dirs, names in os.walk(base):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel = Path(folder).relative_to(self.root).as_posix()
            for name in sorted(names):
                if not name.startswith("."):
                    yield name if rel == "." else f"{rel}/{name}"

    def size(self, path: str) -> int:
        return (self.root / path).stat().st_size

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def exists(self, path: str) -> bool:
        return (self.root / path).is_file()
