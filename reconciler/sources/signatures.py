"""Signed commits: with an allowed-signers file (``ssh-keygen``'s format, as git's
``gpg.ssh.allowedSignersFile``), a commit is trusted only when it carries an SSH signature by
one of its keys in the ``git`` namespace. Checked the way git does, with the real
``ssh-keygen -Y find-principals`` and ``-Y verify``, at the time of the check (so an entry's
``valid-before`` also stops new commits signed after it). The file is read on every check:
an edit takes effect with the next commit. Errors::

    SourceError
    └── UntrustedCommit   unsigned, signed by a key not allowed, or changed after signing
                          (permanent for that commit: record it and wait for the next)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pygit2

from .git import GitRepository, SourceError

NAMESPACE = "git"
SSH_SIGNATURE = b"-----BEGIN SSH SIGNATURE-----"
TIMEOUT = 30.0


class UntrustedCommit(SourceError):
    """A commit whose signature does not say an allowed signer made it; one line."""


class AllowedSigners:
    """The keys whose commits are reconciled."""

    def __init__(self, path: Path, *, program: str = "ssh-keygen") -> None:
        """Raises SourceError when the file has no key or ssh-keygen is missing."""
        found = shutil.which(program)
        if found is None:
            raise SourceError(f"{program} is not installed: it checks commit signatures")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) else "not text"
            raise SourceError(f"allowed signers {path}: {reason}") from None
        entries = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if not entries:
            raise SourceError(f"allowed signers {path}: no key in it")
        self.path = path
        self._program = found

    def verify(self, git: GitRepository, revision: str) -> str:
        """The allowed signer (its principal) of ``revision``'s commit; raises
        UntrustedCommit, or SourceError when the commit cannot be read."""
        commit = git.resolve(revision)
        short = str(commit.id)[:12]
        signature, payload = _signature(commit)
        if signature is None or payload is None:
            raise UntrustedCommit(f"commit {short} is not signed; only signed commits are taken")
        if not signature.lstrip().startswith(SSH_SIGNATURE):
            raise UntrustedCommit(
                f"commit {short} carries an OpenPGP or X.509 signature; only SSH signatures "
                "by an allowed signer are taken"
            )
        with tempfile.TemporaryDirectory(prefix="edgefleet-signature-") as folder:
            sig = Path(folder) / "commit.sig"
            sig.write_bytes(signature)
            principals = self._principals(sig)
            if not principals:
                raise UntrustedCommit(
                    f"commit {short} is signed by a key that is not an allowed signer "
                    f"({self._key(sig, payload)})"
                )
            for principal in principals:
                done = self._run(
                    "-Y", "verify", "-n", NAMESPACE, "-f", str(self.path), "-I", principal,
                    "-s", str(sig), stdin=payload,
                )  # fmt: skip
                if done.returncode == 0 and done.stdout.startswith(b"Good"):
                    return principal
            reason = _first_line(done.stderr) or "the signature does not verify"
        raise UntrustedCommit(
            f"commit {short}: bad signature by {principals[0]} ({reason}): changed after "
            "signing, or not signed for git"
        )

    def _principals(self, sig: Path) -> list[str]:
        done = self._run("-Y", "find-principals", "-f", str(self.path), "-s", str(sig))
        if done.returncode != 0:
            return []
        return [line for line in done.stdout.decode(errors="replace").splitlines() if line]

    def _key(self, sig: Path, payload: bytes) -> str:
        """The signing key's fingerprint, read from the signature itself."""
        done = self._run("-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sig), stdin=payload)
        words = done.stdout.decode(errors="replace").split()
        return next((w for w in words if w.startswith("SHA256:")), "an unknown key")

    def _run(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                [self._program, *args],
                input=stdin,
                capture_output=True,
                timeout=TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SourceError(f"ssh-keygen could not check a signature: {e}") from e


def _signature(commit: pygit2.Commit) -> tuple[bytes | None, bytes | None]:
    signature, payload = commit.gpg_signature
    return signature, payload


def _first_line(data: bytes) -> str:
    lines = data.decode(errors="replace").strip().splitlines()
    return lines[0][:200] if lines else ""
