"""Where fleet files come from: a directory on disk or a git tree at any revision, and
whether a commit was signed by an allowed signer (:mod:`.signatures`).

Both implement :class:`Tree`, so loading never knows which one it reads. A remote repository
is mirrored into a cache folder (:mod:`.remotes`). Errors::

    SourceError
    ├── RevisionNotFound       (a ref or commit that does not resolve)
    ├── UntrustedCommit        (not signed by an allowed signer)
    ├── CredentialsError       (a credential file cannot be used)
    └── FetchFailed            (temporary)
        ├── AuthenticationFailed
        └── HostKeyRejected
"""

from .git import GitRepository, GitTree, RevisionNotFound, SourceError, changed_paths
from .remotes import (
    AuthenticationFailed,
    Credentials,
    CredentialsError,
    FetchFailed,
    HostKeyRejected,
    Mirror,
)
from .signatures import AllowedSigners, UntrustedCommit
from .trees import DirectoryTree, Tree
from .urls import redacted

__all__ = [
    "AllowedSigners",
    "AuthenticationFailed",
    "Credentials",
    "CredentialsError",
    "FetchFailed",
    "HostKeyRejected",
    "Mirror",
    "DirectoryTree",
    "GitRepository",
    "GitTree",
    "RevisionNotFound",
    "SourceError",
    "Tree",
    "UntrustedCommit",
    "changed_paths",
    "redacted",
]
