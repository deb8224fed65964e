"""`edgefleet serve` following private repositories: over SSH from a real sshd (a key and a
known_hosts file made by the test) and over HTTP basic auth from ``git http-backend`` behind
lighttpd. Refused credentials and an unknown host key are one line in the log and on the
fleet status, the last good state keeps being served, and no credential reaches the log."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources import redacted
from tests.integration.conftest import git
from tests.support.operators import VIEWER_TOKEN
from tests.support.services import unavailable

from .gitservers import (
    GitServerUnavailable,
    HttpGitServer,
    SshGitServer,
    bare_clone,
    keygen,
)
from .serving import STORE, Served, args

TOKEN = "ghp-test-token-5f1d0c9a8b7e6d5c4b3a"


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshGitServer]:
    try:
        server = SshGitServer(tmp_path / "sshd").start()
    except GitServerUnavailable as e:
        unavailable(f"sshd: {e}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def httpd(tmp_path: Path) -> Iterator[HttpGitServer]:
    try:
        server = HttpGitServer(tmp_path / "httpd", user="fleet", password=TOKEN).start()
    except GitServerUnavailable as e:
        unavailable(f"lighttpd: {e}")
    try:
        yield server
    finally:
        server.stop()


def wait_for(what: str, check: Callable[[], bool], served: Served, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen:\n{served.log()}")


def source(served: Served) -> dict[str, Any]:
    found = served.fleet_status()["source"]
    assert isinstance(found, dict)
    return found


def push_change(served: Served, remote: Path, old: str, new: str) -> str:
    served.fleet.edit(STORE, old, new)
    served.commit(f"backups at {new}")
    git(served.fleet.root, "push", "-q", str(remote), "main")
    return git(served.fleet.root, "rev-parse", "HEAD")


def status_text(served: Served) -> str:
    token = served.work / "viewer-token"
    token.write_text(VIEWER_TOKEN)
    shown = subprocess.run(
        [sys.executable, "-m", "reconciler", "status", "--server", served.url,
         "--token-file", str(token)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def assert_no_secrets(served: Served, *secrets: str) -> None:
    log = (served.work / "serve.log").read_text(errors="replace")
    for secret in secrets:
        assert secret not in log


def test_ssh_repository_with_a_key_and_a_checked_host_key(
    served: Served, sshd: SshGitServer
) -> None:
    remote = bare_clone(served.fleet.root, served.work / "fleet.git")
    known_hosts = served.work / "known_hosts"
    known_hosts.write_text(sshd.known_hosts_line())
    served.repo = sshd.url(remote)
    served.start(
        *args(served),
        "--cache-dir", str(served.work / "cache"),
        "--fetch-interval", "0.3",
        "--git-ssh-key-file", str(sshd.client_key),
        "--git-known-hosts-file", str(known_hosts),
    )  # fmt: skip
    assert source(served)["ok"] is True
    agent = served.agent("store-1-a")
    first = agent.digest()
    good = push_change(served, remote, '"30 2 * * *"', '"40 2 * * *"')
    wait_for("the second commit", lambda: agent.digest() != first, served)
    served_now = agent.digest()

    # the server stops accepting the key: one line on the status, the last good state stays
    sshd.authorize(keygen(served.work / "other_key", "someone-else"))
    push_change(served, remote, '"40 2 * * *"', '"50 2 * * *"')
    wait_for("the refused key on the status", lambda: not source(served)["ok"], served)
    refused = source(served)
    assert refused["error"] == f"{redacted(sshd.url(remote))}: the credentials were refused"
    assert refused["failingSince"] is not None
    fleet = served.fleet_status()
    assert fleet["revision"]["sha"] == good  # type: ignore[index]
    assert agent.digest() == served_now
    assert "the credentials were refused" in status_text(served)

    # the key is let in again, but the server now shows another host key (in that order for
    # the client: a session the old server forked before it stopped must not see the key)
    sshd.stop()
    sshd.start(new_host_key=True)
    sshd.authorize(sshd.client_key)
    wait_for(
        "the unknown host key on the status",
        lambda: "host key" in (source(served)["error"] or ""),
        served,
    )
    error = source(served)["error"]
    assert error == (
        f"{redacted(sshd.url(remote))}: the host key of 127.0.0.1 is unknown or changed "
        f"(not in {known_hosts})"
    )
    assert agent.digest() == served_now
    assert "the host key of 127.0.0.1 is unknown" in status_text(served)

    # the operator checks the new key and trusts it: fetches work again
    known_hosts.write_text(sshd.known_hosts_line())
    wait_for("a fetch with the new host key", lambda: source(served)["ok"], served)
    wait_for("the third commit", lambda: agent.digest() != served_now, served)
    warnings = [line for line in served.log().splitlines() if "WARNING" in line]
    assert any("credentials were refused" in line for line in warnings)
    assert any("host key" in line for line in warnings)
    key_body = sshd.client_key.read_text().splitlines()[1]
    assert_no_secrets(served, key_body)


def test_https_style_repository_with_a_token_file(served: Served, httpd: HttpGitServer) -> None:
    remote = bare_clone(served.fleet.root, httpd.repos / "fleet.git")
    password = served.work / "git-token"
    password.write_text(TOKEN + "\n")
    served.repo = httpd.url("fleet.git")
    served.start(
        *args(served),
        "--cache-dir", str(served.work / "cache"),
        "--fetch-interval", "0.3",
        "--git-username", "fleet",
        env={"EDGEFLEET_GIT_PASSWORD_FILE": str(password)},
    )  # fmt: skip
    assert source(served) | {"lastFetchedAt": None} == {
        "url": redacted(httpd.url("fleet.git")),
        "branch": "main",
        "ok": True,
        "error": None,
        "failingSince": None,
        "lastFetchedAt": None,
    }
    agent = served.agent("store-1-a")
    first = agent.digest()
    good = push_change(served, remote, '"30 2 * * *"', '"40 2 * * *"')
    wait_for("the second commit", lambda: agent.digest() != first, served)
    served_now = agent.digest()

    # the token is revoked on the server
    httpd.set_password("fleet", "a-newer-token-the-reconciler-lacks")
    push_change(served, remote, '"40 2 * * *"', '"50 2 * * *"')
    wait_for("the refused token on the status", lambda: not source(served)["ok"], served)
    refused = f"{redacted(httpd.url('fleet.git'))}: the credentials were refused"
    assert source(served)["error"] == refused
    assert served.fleet_status()["revision"]["sha"] == good  # type: ignore[index]
    assert agent.digest() == served_now

    # the new token goes into the file: read again at the next fetch, no restart
    password.write_text("a-newer-token-the-reconciler-lacks")
    wait_for("the third commit", lambda: agent.digest() != served_now, served)
    assert source(served)["ok"] is True
    assert_no_secrets(served, TOKEN, "a-newer-token-the-reconciler-lacks")


def test_a_private_repository_without_what_it_needs_is_one_line(
    served: Served, sshd: SshGitServer, tmp_path: Path
) -> None:
    base = [sys.executable, "-m", "reconciler", "serve", *args(served),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    ssh_url = sshd.url(served.work / "fleet.git")
    cases = [
        ([ssh_url], "an ssh URL needs --git-known-hosts-file"),
        (
            [ssh_url, "--git-known-hosts-file", str(tmp_path / "missing")],
            f"git known_hosts file {tmp_path / 'missing'}: No such file or directory",
        ),
        (
            ["http://127.0.0.1:9/fleet.git", "--git-password-file", str(tmp_path / "none")],
            f"git password file {tmp_path / 'none'}: No such file or directory",
        ),
    ]
    for extra, message in cases:
        done = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stderr
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
