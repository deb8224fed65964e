"""Signatures on the real ``edgefleet serve``: every served state is signed with the key of
``--signing-key`` (over the body's exact bytes); with ``--allowed-signers`` only commits an
allowed key signed (real git, ``gpg.format=ssh``, real ``ssh-keygen``) are reconciled, and an
unsigned or badly signed one is recorded as failed while every site keeps its state."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.signatures import HEADER, SignatureError, key_id, load_public_keys, sign, verify
from reconciler.cli.common import builtin_packs
from reconciler.delivery.documents import presigner, served_body
from reconciler.rollout import RolloutService
from reconciler.service import Reconciler
from reconciler.sources import GitRepository
from reconciler.store import Store
from tests.support.fleet import FleetFiles
from tests.support.git import git
from tests.support.hostile import init_repository
from tests.support.keys import allowed_signers, sign_commits, ssh_key
from tests.support.operators import VIEWER
from tests.support.services import install_missing_packages, unavailable

from .serving import STORE, Served, args

SITE = "store-1"


def test_every_served_state_is_signed_by_the_serving_key(served: Served) -> None:  # noqa: F811
    served.start(*args(served))
    keys = load_public_keys(served.work / "signing.pem.pub")
    agent = served.agent("store-1-a")
    answer = agent.desired()
    assert answer.status_code == 200
    signature = answer.headers[HEADER]
    assert signature.startswith(key_id(keys[0]) + " ")
    assert verify(answer.content, signature, keys) == key_id(keys[0])
    # one byte changed on the way, and the signature no longer holds
    with pytest.raises(SignatureError, match="bad signature: changed after"):
        verify(answer.content.replace(b'"store-1"', b'"store-2"'), signature, keys)
    unchanged = agent.desired(etag=answer.json()["digest"])
    assert unchanged.status_code == 304
    assert HEADER not in unchanged.headers


@pytest.mark.parametrize(
    "flags,message",
    [
        ([], "--signing-key is required: agents refuse unsigned states"),
        (["--signing-key", "/nonexistent/key.pem"], "--signing-key /nonexistent/key.pem: "),
        (["--signing-key", "{pub}"], "not an unencrypted PEM private key"),
    ],
)
def test_serve_needs_a_signing_key(
    served: Served,  # noqa: F811
    flags: list[str],
    message: str,
) -> None:
    base = args(served)
    at = base.index("--signing-key")
    flags = [f.format(pub=served.work / "signing.pem.pub") for f in flags]
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "serve", served.repo, *base[:at], *base[at + 2 :],
         *flags],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.fixture
def signing(served: Served) -> tuple[Path, Path]:  # noqa: F811
    """The repository's commits signed by alice (allowed); mallory's key is not allowed."""
    install_missing_packages("ssh-keygen", timeout=600)
    if shutil.which("ssh-keygen") is None:
        unavailable("ssh-keygen is not installed (Debian's openssh-client)")
    alice = ssh_key(served.work / "keys", "alice", "alice@acme.test")
    mallory = ssh_key(served.work / "keys", "mallory", "mallory@evil.test")
    allowed_signers(served.work / "allowed_signers", ("alice@acme.test", alice))
    sign_commits(served.fleet.root, alice)
    git(served.fleet.root, "commit", "-q", "--allow-empty", "-m", "signed from here on")
    return alice, mallory


def revisions(served: Served) -> list[dict[str, object]]:  # noqa: F811
    answer = httpx.get(f"{served.url}/v1/revisions", headers=VIEWER, timeout=5)
    found: list[dict[str, object]] = answer.json()["revisions"]
    return found


def recorded(served: Served, sha: str) -> dict[str, object]:  # noqa: F811
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = [r for r in revisions(served) if r["sha"] == sha]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"{sha[:12]} was never recorded:\n{served.log()}")


@pytest.mark.parametrize("how", ["unsigned", "signed by a key not allowed"])
def test_only_commits_an_allowed_signer_signed_roll_out(
    served: Served,  # noqa: F811
    signing: tuple[Path, Path],
    how: str,
) -> None:
    _alice, mallory = signing
    served.start(*args(served), "--allowed-signers", str(served.work / "allowed_signers"))
    agent = served.agent("store-1-a")
    good = agent.digest()
    assert good is not None
    served.fleet.edit(STORE, '"30 2 * * *"', '"40 2 * * *"')
    git(served.fleet.root, "add", "-A")
    flags = (
        ["-c", "commit.gpgsign=false"]
        if how == "unsigned"
        else ["-c", f"user.signingkey={mallory}"]
    )
    git(served.fleet.root, *flags, "commit", "-qm", "store-1 backs up at 2:40")
    sha = git(served.fleet.root, "rev-parse", "HEAD")
    failed = recorded(served, sha)
    assert failed["outcome"] == "failed"
    (error,) = failed["errors"]  # type: ignore[misc]
    expected = {
        "unsigned": f"commit {sha[:12]} is not signed; only signed commits are taken",
        "signed by a key not allowed": f"commit {sha[:12]} is signed by a key that is not an "
        "allowed signer (SHA256:",
    }[how]
    assert str(error).startswith(expected)
    time.sleep(0.5)
    assert agent.digest() == good  # the site keeps its last good state
    # the same change, signed by alice, rolls out
    git(served.fleet.root, "commit", "-q", "--allow-empty", "-m", "signed again")
    signed = git(served.fleet.root, "rev-parse", "HEAD")
    assert recorded(served, signed)["outcome"] == "good"
    deadline = time.monotonic() + 10
    while agent.digest() == good:
        assert time.monotonic() < deadline, served.log()
        time.sleep(0.1)


def test_a_revision_is_signed_once_rendered_when_published_and_not_when_seeded(
    fleet: FleetFiles, tmp_path: Path
) -> None:
    """The reconciler signs the served documents of a revision it publishes once they are
    rendered, and offers the signatures with the release's contents; seeding from the last
    good revision (a restart, a replica taking over) publishes nothing and signs nothing."""
    init_repository(fleet)
    git_repo = GitRepository(fleet.root)
    sha = str(git_repo.resolve("HEAD").id)
    key = Ed25519PrivateKey.generate()
    signed: list[bytes] = []

    def signer(body: bytes) -> str:
        signed.append(body)
        return sign(body, key)

    rollout = RolloutService(store=Store(f"sqlite:///{tmp_path / 'r.db'}"))
    offered: list[dict[str, str]] = []
    rollout.notifier.listen(lambda _: offered.append(dict(rollout.notifier.presigned(sha))))
    reconciler = Reconciler(
        git=git_repo, rollout=rollout, builtin=builtin_packs(), presigner=presigner(signer)
    )
    assert reconciler.reconcile(sha).published
    assert signed and offered and offered[0]
    with rollout.store.read() as tx:
        stored = tx.documents.get_many(set(offered[0]))
    assert set(stored) == set(offered[0])
    for digest, signature in offered[0].items():
        body = served_body(stored[digest], digest=digest, revision=sha, joins=None)
        assert verify(body, signature, [key.public_key()]) == key_id(key.public_key())

    count = len(signed)
    again = Reconciler(
        git=git_repo, rollout=rollout, builtin=builtin_packs(), presigner=presigner(signer)
    )
    assert again.seed(sha)
    assert len(signed) == count
