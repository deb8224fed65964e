"""Signed commits with real git (``git commit -S``, ``gpg.format=ssh``) and the real
``ssh-keygen``: a commit is trusted only when an allowed signer signed it, and ``validate``
and ``plan`` say so before a merge as ``serve`` will after it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.sources import AllowedSigners, GitRepository, SourceError, UntrustedCommit
from tests.support.fleet import FleetFiles
from tests.support.git import git
from tests.support.keys import allowed_signers, sign_commits, ssh_key
from tests.support.services import install_missing_packages, unavailable

STORE = "sites/store-1/clusters/pos.yaml"


@dataclass
class Signed:
    repo: FleetFiles
    alice: Path  # an allowed signer's key
    mallory: Path  # a key nobody allowed
    signers: Path  # the allowed-signers file

    def commit(self, message: str, *flags: str) -> str:
        git(self.repo.root, "add", "-A")
        git(self.repo.root, *flags, "commit", "-qm", message)
        return git(self.repo.root, "rev-parse", "HEAD")

    def change(self, value: str) -> None:
        """Move store-1's backup to another time (``"40 2 * * *"``)."""
        current = self.repo.read(STORE).split("schedule: ")[1].split("\n")[0]
        self.repo.edit(STORE, f"schedule: {current}", f"schedule: {value}")


@pytest.fixture
def signed(fleet: FleetFiles, tmp_path: Path) -> Signed:
    install_missing_packages("ssh-keygen", timeout=600)
    if shutil.which("ssh-keygen") is None:
        unavailable("ssh-keygen is not installed (Debian's openssh-client)")
    keys = tmp_path / "keys"
    alice = ssh_key(keys, "alice", "alice@acme.test")
    mallory = ssh_key(keys, "mallory", "mallory@evil.test")
    signers = allowed_signers(tmp_path / "allowed_signers", ("alice@acme.test", alice))
    git(fleet.root, "init", "-q", "-b", "main")
    sign_commits(fleet.root, alice)
    found = Signed(fleet, alice, mallory, signers)
    found.commit("base fleet")
    return found


def check(signed: Signed, rev: str = "HEAD") -> str:
    return AllowedSigners(signed.signers).verify(GitRepository(signed.repo.root), rev)


def test_a_commit_signed_by_an_allowed_signer_is_trusted(signed: Signed) -> None:
    assert check(signed) == "alice@acme.test"


def test_an_unsigned_commit_is_not(signed: Signed) -> None:
    signed.change('"40 2 * * *"')
    sha = signed.commit("unsigned", "-c", "commit.gpgsign=false")
    with pytest.raises(UntrustedCommit) as refused:
        check(signed)
    assert str(refused.value) == (f"commit {sha[:12]} is not signed; only signed commits are taken")


def test_a_commit_signed_by_another_key_is_not(signed: Signed) -> None:
    signed.change('"40 2 * * *"')
    sha = signed.commit("signed by mallory", "-c", f"user.signingkey={signed.mallory}")
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", f"{signed.mallory}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    with pytest.raises(UntrustedCommit) as refused:
        check(signed)
    assert str(refused.value) == (
        f"commit {sha[:12]} is signed by a key that is not an allowed signer ({fingerprint})"
    )


def test_a_commit_changed_after_signing_is_not(signed: Signed) -> None:
    """The signature of a good commit, carried over to a commit with another tree."""
    good = git(signed.repo.root, "cat-file", "commit", "HEAD")
    other_tree = git(signed.repo.root, "rev-parse", "HEAD^{tree}")
    signed.repo.write("sites/store-1/notes.txt", "a file the signer never saw\n")
    git(signed.repo.root, "add", "-A")
    forged_tree = git(signed.repo.root, "write-tree")
    forged = good.replace(f"tree {other_tree}", f"tree {forged_tree}", 1)
    sha = subprocess.run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
        cwd=signed.repo.root, input=forged + "\n", capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    with pytest.raises(UntrustedCommit) as refused:
        check(signed, sha)
    assert str(refused.value).startswith(f"commit {sha[:12]}: bad signature by alice@acme.test (")


def test_a_key_allowed_for_another_namespace_only_signs_no_commit(signed: Signed) -> None:
    text = signed.signers.read_text().replace('namespaces="git"', 'namespaces="file"')
    signed.signers.write_text(text)
    with pytest.raises(UntrustedCommit, match="bad signature by alice@acme.test"):
        check(signed)


def test_a_key_past_its_valid_before_signs_no_new_commit(signed: Signed) -> None:
    text = signed.signers.read_text().replace(
        'namespaces="git"', 'namespaces="git",valid-before="20200101"'
    )
    signed.signers.write_text(text)
    with pytest.raises(UntrustedCommit, match="is signed by a key that is not an allowed signer"):
        check(signed)


def test_an_empty_allowed_signers_file_is_refused(signed: Signed) -> None:
    signed.signers.write_text("# nobody yet\n")
    with pytest.raises(SourceError, match="no key in it"):
        AllowedSigners(signed.signers)


def run(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout + done.stderr


def test_validate_checks_the_signature_of_the_revision(signed: Signed) -> None:
    root, signers = str(signed.repo.root), str(signed.signers)
    code, out = run("validate", root, "--rev", "HEAD", "--allowed-signers", signers)
    assert (code, out.strip()) == (0, "valid (3 sites, 5 appliances, 3 clusters)")
    signed.change('"40 2 * * *"')
    sha = signed.commit("unsigned", "-c", "commit.gpgsign=false")
    code, out = run("validate", root, "--rev", "HEAD", "--allowed-signers", signers)
    assert code == 1
    assert out.splitlines() == [
        f"commit {sha[:12]} is not signed; only signed commits are taken",
        "invalid: 1 problem (3 sites, 5 appliances, 3 clusters)",
    ]
    code, out = run(
        "validate", root, "--rev", "HEAD", "--allowed-signers", signers, "--format", "github"
    )
    assert out.splitlines() == [
        f"::error::commit {sha[:12]} is not signed; only signed commits are taken"
    ]
    code, out = run("validate", root, "--allowed-signers", signers)
    assert code == 2
    assert "--allowed-signers needs --rev" in out


def test_plan_refuses_a_head_no_allowed_signer_signed(signed: Signed) -> None:
    root, signers = str(signed.repo.root), str(signed.signers)
    signed.change('"40 2 * * *"')
    signed.commit("signed")
    code, out = run(
        "plan", root, "--base", "HEAD~1", "--head", "HEAD", "--allowed-signers", signers
    )
    assert code == 0, out
    assert "1 of 3 sites change" in out
    signed.change('"50 2 * * *"')
    sha = signed.commit("signed by mallory", "-c", f"user.signingkey={signed.mallory}")
    code, out = run(
        "plan", root, "--base", "HEAD~1", "--head", "HEAD", "--allowed-signers", signers
    )
    assert code == 1
    assert out.strip().startswith(
        f"the head revision HEAD would not roll out: commit {sha[:12]} is signed by a key that "
        "is not an allowed signer (SHA256:"
    )
