"""Remote repositories: a bare mirror in a cache folder, fetched through pygit2 with the
credentials ``edgefleet serve`` was given (an SSH key checked against a known_hosts file, or
an HTTPS user and token). Called by :mod:`reconciler.service.watching`. Errors::

    SourceError
    ├── CredentialsError       a credential file is missing, unreadable or empty (at start)
    └── FetchFailed            the remote could not be fetched (temporary: retried)
        ├── AuthenticationFailed   it refused the credentials, or asked for none given
        └── HostKeyRejected        the SSH host key is not in the known_hosts file

Messages are one line and never hold a credential: URLs are shown without their password.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pygit2
from pygit2.enums import CredentialType

from .git import GitRepository, SourceError
from .urls import redacted

REMOTE = "origin"


class CredentialsError(SourceError):
    """A credential file cannot be used: a configuration error, reported at start."""


class FetchFailed(SourceError):
    """The remote could not be fetched; the next fetch tries again."""


class AuthenticationFailed(FetchFailed):
    """The remote refused the credentials (or asked for credentials none were given for)."""


class HostKeyRejected(FetchFailed):
    """The SSH server's host key is not the one the known_hosts file holds for it."""


@dataclass(frozen=True)
class Credentials:
    """What serve authenticates with: ``ssh_key`` (a private key file, its public key
    beside it as ``KEY.pub`` when present) and ``known_hosts`` for ssh URLs; ``username``
    and ``password_file`` (a token or password) for https URLs."""

    ssh_key: Path | None = None
    known_hosts: Path | None = None
    username: str | None = None
    password_file: Path | None = None

    def password(self) -> str | None:
        return _secret(self.password_file, "git password file")


def shown(url: str) -> str:
    """``url`` as messages and status show it: without the credentials it may carry (a
    password, or a token written as the user)."""
    return redacted(url)


def is_ssh(url: str) -> bool:
    return url.startswith("ssh://") or bool(re.match(r"^[^/:]+@[^/:]+:", url))


def _secret(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        text = path.read_text().strip()
    except OSError as e:
        raise CredentialsError(f"{what} {path}: {e.strerror}") from None
    if not text:
        raise CredentialsError(f"{what} {path} is empty")
    return text


def _readable(path: Path | None, what: str) -> None:
    if path is None:
        return
    try:
        with path.open("rb"):
            pass
    except OSError as e:
        raise CredentialsError(f"{what} {path}: {e.strerror}") from None


class _Callbacks(pygit2.RemoteCallbacks):
    """Hands libgit2 the configured credentials once per operation: asked again, the
    remote refused them. Keeps the host key verdict of the known_hosts file."""

    def __init__(self, url: str, credentials: Credentials) -> None:
        super().__init__()
        self._url = url
        self._credentials = credentials
        self._asked = 0
        self.rejected_host: str | None = None

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.Username | pygit2.UserPass | pygit2.Keypair:
        self._asked += 1
        found = self._credentials
        if self._asked > 1:
            raise AuthenticationFailed(f"{shown(self._url)}: the credentials were refused")
        user = username_from_url or found.username or "git"
        if allowed_types & CredentialType.SSH_KEY and found.ssh_key is not None:
            public = found.ssh_key.with_name(found.ssh_key.name + ".pub")
            return pygit2.Keypair(user, public if public.is_file() else None, found.ssh_key, "")
        if allowed_types & CredentialType.USERPASS_PLAINTEXT:
            password = found.password()
            if password is not None:
                return pygit2.UserPass(found.username or username_from_url or "git", password)
        if allowed_types & CredentialType.USERNAME:
            return pygit2.Username(user)
        raise AuthenticationFailed(
            f"{shown(self._url)}: the remote asks for credentials and none are configured "
            "(--git-ssh-key-file, or --git-password-file)"
        )

    def certificate_check(self, certificate: None, valid: bool, host: bytes) -> bool:
        # libgit2 judged the TLS certificate, or the SSH host key against known_hosts
        if not valid:
            self.rejected_host = host.decode(errors="replace")
        return valid


class Mirror:
    """A bare copy of a remote repository in ``cache``, brought up to date by :meth:`fetch`."""

    def __init__(self, url: str, cache: Path, credentials: Credentials) -> None:
        self.url = url
        self.credentials = credentials
        self._check_credentials()
        try:
            if not (cache / "HEAD").exists():
                cache.mkdir(parents=True, exist_ok=True)
                pygit2.init_repository(str(cache), bare=True)
            self.git = GitRepository(cache)
            remotes = self.git.repo.remotes
            if REMOTE in remotes.names():
                remotes.set_url(REMOTE, url)
            else:
                remotes.create(REMOTE, url)
        except (OSError, pygit2.GitError) as e:
            raise SourceError(f"cache {cache}: {e}") from None
        # libgit2 reads SSH host keys from <its home folder>/.ssh/known_hosts only: the
        # home it is given holds a link to the configured file, and nothing else
        self._home = cache.parent / f".{cache.name}-home"

    @property
    def shown(self) -> str:
        return shown(self.url)

    def _check_credentials(self) -> None:
        found = self.credentials
        if is_ssh(self.url):
            if found.known_hosts is None:
                raise CredentialsError(
                    f"{self.shown}: an ssh URL needs --git-known-hosts-file, so the server's "
                    "host key is checked"
                )
            _readable(found.known_hosts, "git known_hosts file")
        _readable(found.ssh_key, "git SSH key file")
        found.password()

    def _point_home(self) -> None:
        known_hosts = self.credentials.known_hosts
        if known_hosts is None:
            return
        ssh = self._home / ".ssh"
        ssh.mkdir(parents=True, exist_ok=True, mode=0o700)
        link = ssh / "known_hosts"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(known_hosts.resolve())
        pygit2.settings.homedir = str(self._home)

    def fetch(self, branch: str) -> None:
        """Fetch ``branch`` into ``refs/remotes/origin/BRANCH``."""
        callbacks = _Callbacks(self.url, self.credentials)
        try:
            self._point_home()
            self.git.repo.remotes[REMOTE].fetch(
                [f"+refs/heads/{branch}:refs/remotes/{REMOTE}/{branch}"], callbacks=callbacks
            )
        except FetchFailed:
            raise
        except CredentialsError as e:  # a file that went away since the start
            raise FetchFailed(str(e)) from None
        except (pygit2.GitError, OSError, KeyError) as e:
            if callbacks.rejected_host is not None:
                raise HostKeyRejected(
                    f"{self.shown}: the host key of {callbacks.rejected_host} is unknown or "
                    f"changed (not in {self.credentials.known_hosts})"
                ) from None
            raise FetchFailed(f"{self.shown}: fetch failed: {self._reason(e)}") from None

    def _reason(self, error: BaseException) -> str:
        """The library's first message line, with the URL shown and no password in it."""
        lines = str(error).strip().splitlines()
        text = lines[0][:300] if lines else type(error).__name__
        text = text.replace(self.url, self.shown)
        password = urlsplit(self.url).password if "://" in self.url else None
        for secret in (password, _quiet(self.credentials.password)):
            if secret:
                text = text.replace(secret, "***")
        return text


def _quiet(read: Callable[[], str | None]) -> str | None:
    try:
        return read()
    except CredentialsError:
        return None
