"""Where fleet files come from: a directory on disk or a git tree at any revision.

Both implement :class:`Tree`, so loading never knows which one it reads. Errors::

    SourceError
    └── RevisionNotFound   (a ref or commit that does not resolve)
"""

from .git import GitRepository, GitTree, RevisionNotFound, SourceError, changed_paths
from .trees import DirectoryTree, Tree
from .urls import redacted

__all__ = [
    "DirectoryTree",
    "GitRepository",
    "GitTree",
    "RevisionNotFound",
    "SourceError",
    "Tree",
    "changed_paths",
    "redacted",
]
