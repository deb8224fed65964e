"""A revision's files read straight from git objects: sizes, contents and the size limit."""

from __future__ import annotations

from pathlib import Path

import pygit2

from bench.synthetic import write_tree
from reconciler.loading import load_repository
from reconciler.loading.yamldocs import MAX_FILE_BYTES
from reconciler.sources import GitRepository


def repository(path: Path, files: dict[str, str]) -> GitRepository:
    repo = pygit2.init_repository(str(path), bare=True)
    signature = pygit2.Signature("test", "test@example.test", 1_700_000_000, 0)
    tree = write_tree(repo, files)
    repo.create_commit("refs/heads/main", signature, signature, "files", tree, [])
    return GitRepository(path)


def test_sizes_and_contents_match_whatever_order_they_are_asked_in(tmp_path: Path) -> None:
    files = {"a.yaml": "a: 1\n", "sites/b/site.yaml": "b: 22\n", "sites/c.yaml": ""}
    tree = repository(tmp_path / "r.git", files).tree("main")
    for path in [*files, *reversed(files), *files]:
        assert tree.size(path) == len(files[path].encode())
        assert tree.read(path) == files[path].encode()
        assert tree.read(path) == files[path].encode()
    assert tree.size("a.yaml") == 5 and tree.read("sites/c.yaml") == b""
    assert tree.read("a.yaml") == b"a: 1\n"


def test_a_file_over_the_size_limit_in_a_commit_is_refused_with_its_path(tmp_path: Path) -> None:
    big = "x: " + "y" * MAX_FILE_BYTES + "\n"
    tree = repository(tmp_path / "r.git", {"fleet.yaml": big}).tree("main")
    loaded = load_repository(tree)
    assert [(d.path, d.line) for d in loaded.diagnostics] == [("fleet.yaml", 1)]
    assert "byte limit" in loaded.diagnostics[0].message
