"""Hostile files get a one-line error within seconds and bounded memory, never a traceback.

Each case runs ``edgefleet validate`` in its own process so that its peak memory can be read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from reconciler.loading import load_repository
from reconciler.sources import DirectoryTree
from tests.support.fleet import FleetFiles

SITE = "sites/store-1/site.yaml"
MEMORY_LIMIT_KIB = 400 * 1024


def alias_bomb() -> bytes:
    lines = ["apiVersion: edgefleet.dev/v1", "kind: Site", 'a0: &a0 ["lol", "lol", "lol"]']
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines).encode()


def huge_file() -> bytes:
    return b"apiVersion: edgefleet.dev/v1\nkind: Site\nnote: " + b"x" * (50 * 1024 * 1024)


def deep_nesting() -> bytes:
    return b"apiVersion: edgefleet.dev/v1\nkind: Site\nspec: " + b"{a: " * 200_000


def block_nesting() -> bytes:
    text = "".join(f"{'  ' * i}k{i}:\n" for i in range(1000))
    return ("apiVersion: edgefleet.dev/v1\nkind: Site\n" + text).encode()


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (alias_bomb, 8, "document expands to more than 250000 values (an alias bomb?)"),
        (huge_file, 1, "larger than the 4194304 byte limit"),
        (deep_nesting, 3, "nesting deeper than 64 levels"),
        (block_nesting, 67, "nesting deeper than 64 levels"),
    ],
    ids=["alias-bomb", "50-MB-file", "deep-flow-nesting", "deep-block-nesting"],
)
def test_hostile_file(fleet: FleetFiles, content, line: int, reason: str) -> None:
    (fleet.root / SITE).write_bytes(content())
    probe = textwrap.dedent(
        f"""
        import resource, subprocess, sys
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "validate", {str(fleet.root)!r},
             "--format", "json"],
            capture_output=True, text=True, timeout=60)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(done.returncode, peak)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    first, _, report = done.stdout.partition("\n")
    code, peak = (int(x) for x in first.split())
    assert "Traceback" not in done.stderr
    assert code == 1
    assert peak < MEMORY_LIMIT_KIB, f"peak memory {peak} KiB"
    errors = json.loads(report)["errors"]
    assert [(e["file"], e["line"]) for e in errors if reason in e["message"]] == [(SITE, line)]


def test_oversized_file_is_refused_before_it_is_read(fleet: FleetFiles) -> None:
    """The size limit is checked on the file's size, before its content is loaded."""

    class CountingTree(DirectoryTree):
        read_paths: list[str] = []

        def read(self, path: str) -> bytes:
            self.read_paths.append(path)
            return super().read(path)

    (fleet.root / SITE).write_bytes(huge_file())
    tree = CountingTree(fleet.root)
    repo = load_repository(tree)
    assert SITE not in tree.read_paths
    assert [d.line for d in repo.diagnostics if d.path == SITE] == [1]
