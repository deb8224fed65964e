"""Keys the tests make: the reconciler's Ed25519 signing key (as ``edgefleet keygen`` writes
it) and SSH keys that sign git commits (made by the real ``ssh-keygen``), with the
allowed-signers file that trusts them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.signatures import public_pem
from tests.support.git import git


def signing_key(folder: Path, name: str = "signing.pem") -> Path:
    """An Ed25519 private key at ``folder/name`` and its public key at ``name.pub``."""
    key = Ed25519PrivateKey.generate()
    path = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    path.with_name(name + ".pub").write_bytes(public_pem(key))
    return path


def ssh_key(folder: Path, name: str, principal: str) -> Path:
    """An ed25519 SSH key pair made by ssh-keygen (``name`` and ``name.pub``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(path)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    return path


def allowed_signers(path: Path, *keys: tuple[str, Path]) -> Path:
    """An allowed-signers file: one ``PRINCIPAL namespaces="git" KEYTYPE KEY`` per key."""
    lines = ["# principal options keytype key"]
    for principal, key in keys:
        kind, material = Path(f"{key}.pub").read_text().split()[:2]
        lines.append(f'{principal} namespaces="git" {kind} {material}')
    path.write_text("\n".join(lines) + "\n")
    return path


def sign_commits(repo: Path, key: Path) -> None:
    """Make ``git commit`` in ``repo`` sign every commit with the SSH ``key``."""
    git(repo, "config", "gpg.format", "ssh")
    git(repo, "config", "user.signingkey", str(key))
    git(repo, "config", "commit.gpgsign", "true")
