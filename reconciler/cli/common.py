"""Helpers shared by the CLI commands: opening a repository at a revision."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import Diagnostic
from ..packs import BUILTIN_FOLDER, BUILTIN_ROOT
from ..sources import DirectoryTree, GitRepository, GitTree, SourceError, Tree


class UsageError(Exception):
    """Bad arguments: the command prints the message and exits 2."""


def open_tree(repo: str, rev: str | None) -> Tree:
    """The repository folder as it is on disk, or one of its commits with ``rev``."""
    path = Path(repo)
    if not path.exists():
        raise UsageError(f"{repo}: no such repository")
    if rev is None:
        if not path.is_dir():
            raise UsageError(f"{repo}: not a folder")
        return DirectoryTree(path)
    try:
        return GitRepository(path).tree(rev)
    except SourceError as e:
        raise UsageError(str(e)) from e


def builtin_packs() -> tuple[Tree, str]:
    return DirectoryTree(BUILTIN_ROOT), BUILTIN_FOLDER


def fail_usage(message: str) -> int:
    print(f"edgefleet: {message}", file=sys.stderr)
    return 2


def revision_of(tree: Tree) -> str:
    """The commit a tree was read from, or ``working-tree`` for a folder."""
    return tree.commit if isinstance(tree, GitTree) else "working-tree"


def print_problems(problems: list[Diagnostic]) -> None:
    for d in sorted(problems):
        print(d)
    plural = "s" if len(problems) != 1 else ""
    print(f"invalid: {len(problems)} problem{plural}")
