"""Git access through pygit2: resolve revisions and read trees without a checkout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pygit2


class SourceError(Exception):
    """The repository cannot be read."""


class RevisionNotFound(SourceError):
    """A revision (branch, tag, sha, ``HEAD~1``) does not resolve to a commit."""


class GitRepository:
    """A local git repository (bare or with a work tree)."""

    def __init__(self, path: Path) -> None:
        try:
            found = pygit2.discover_repository(str(path))
            if found is None:
                raise SourceError(f"{path}: not a git repository")
            self.repo = pygit2.Repository(found)
        except pygit2.GitError as e:
            raise SourceError(f"{path}: {e}") from e

    def resolve(self, rev: str) -> pygit2.Commit:
        try:
            obj = self.repo.revparse_single(rev)
            commit = obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError) as e:
            raise RevisionNotFound(f"revision '{rev}' not found") from e
        return commit

    def tree(self, rev: str) -> GitTree:
        commit = self.resolve(rev)
        return GitTree(self.repo, commit.tree, str(commit.id))


class GitTree:
    """One commit's tree, read straight from the object database."""

    def __init__(self, repo: pygit2.Repository, tree: pygit2.Tree, commit: str) -> None:
        self.repo = repo
        self.root = tree
        self.commit = commit

    def _entry(self, path: str) -> pygit2.Object | None:
        try:
            return self.root[path]
        except KeyError:
            return None

    def files(self, prefix: str = "") -> Iterator[str]:
        base = self.root if not prefix else self._entry(prefix)
        if not isinstance(base, pygit2.Tree):
            return
        yield from self._walk(base, prefix)

    def _walk(self, tree: pygit2.Tree, prefix: str) -> Iterator[str]:
        for entry in sorted(tree, key=lambda e: e.name or ""):
            name = entry.name or ""
            if name.startswith("."):
                continue
            path = f"{prefix}/{name}" if prefix else name
            if entry.type_str == "tree":
                subtree = self.repo[entry.id]
                assert isinstance(subtree, pygit2.Tree)
                yield from self._walk(subtree, path)
            elif entry.type_str == "blob":
                yield path

    def blob(self, path: str) -> pygit2.Blob:
        entry = self._entry(path)
        if not isinstance(entry, pygit2.Blob):
            raise FileNotFoundError(path)
        return entry

    def oid(self, path: str) -> str:
        """The object id of a file or folder: equal ids mean equal content."""
        entry = self._entry(path)
        if entry is None:
            raise FileNotFoundError(path)
        return str(entry.id)

    def size(self, path: str) -> int:
        return int(self.blob(path).size)

    def read(self, path: str) -> bytes:
        return bytes(self.blob(path).data)

    def exists(self, path: str) -> bool:
        return isinstance(self._entry(path), pygit2.Blob)
