"""Helpers shared by the CLI commands: opening a repository at a revision, the rendering
limits, printing problems."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.terminal import printable

from ..errors import Diagnostic
from ..packs import BUILTIN_FOLDER, BUILTIN_ROOT
from ..rendering import MIB, RenderLimits
from ..sources import DirectoryTree, GitRepository, GitTree, SourceError, Tree

LIMIT_DEFAULTS = RenderLimits()
LIMIT_OPTIONS = {  # name: (default, help)
    "render-timeout": (
        f"{LIMIT_DEFAULTS.seconds:g}",
        "seconds one site's templates may run",
    ),
    "render-memory": (
        str(LIMIT_DEFAULTS.memory // MIB),
        "MiB of values one site's templates may build",
    ),
    "render-output": (
        str(LIMIT_DEFAULTS.output),
        "characters one template's output (or any value it builds) may hold",
    ),
}


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
    print(printable(f"edgefleet: {message}", lines=False), file=sys.stderr)
    return 2


def revision_of(tree: Tree) -> str:
    """The commit a tree was read from, or ``working-tree`` for a folder."""
    return tree.commit if isinstance(tree, GitTree) else "working-tree"


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("rendering limits (a template past one fails)")
    for name, (default, text) in LIMIT_OPTIONS.items():
        group.add_argument(f"--{name}", default=default, help=f"{text} (default: {default})")


def render_limits(timeout: str | None, memory: str | None, output: str | None) -> RenderLimits:
    """The limits from option values (text, as flags, variables and files give them);
    raises ValueError naming the option that is wrong."""
    values: list[float] = []
    for name, text in zip(LIMIT_OPTIONS, (timeout, memory, output), strict=True):
        default = LIMIT_OPTIONS[name][0]
        try:
            value = float(text if text is not None else default)
        except ValueError:
            value = -1.0
        if not value > 0 or value != value or value == float("inf"):
            raise ValueError(f"--{name} must be a positive number (got {text})")
        values.append(value)
    seconds, memory_mib, characters = values
    return RenderLimits(
        seconds=seconds, memory=int(memory_mib * MIB), output=max(int(characters), 1)
    )


def limits_of(args: argparse.Namespace) -> RenderLimits:
    return render_limits(args.render_timeout, args.render_memory, args.render_output)


def print_problems(problems: list[Diagnostic]) -> None:
    for d in sorted(problems):
        print(printable(str(d), lines=False))
    plural = "s" if len(problems) != 1 else ""
    print(f"invalid: {len(problems)} problem{plural}")
