"""Real git servers on 127.0.0.1 for the private-repository tests: Debian's OpenSSH server
with a host key and an authorized client key made by the test, and ``git http-backend``
behind lighttpd with basic auth. Each logs to a file in its folder and is stopped by
:meth:`stop`; a server that cannot start raises :class:`GitServerUnavailable`."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
LIGHTTPD = Path("/usr/sbin/lighttpd")
HTTP_BACKEND = Path("/usr/lib/git-core/git-http-backend")


class GitServerUnavailable(Exception):
    """Why the server cannot run here (becomes the skip or failure message)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path, comment: str) -> Path:
    """An ed25519 key pair without passphrase: ``path`` and ``path.pub``."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log.read_text(errors="replace")[-600:] if log.exists() else ""
            raise GitServerUnavailable(f"exited with {process.returncode}: {text}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise GitServerUnavailable(f"not listening on 127.0.0.1:{port} after 15 s")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class SshGitServer:
    """sshd on 127.0.0.1 letting one client key in, as the current user; the repositories
    are plain paths, reached as ``ssh://USER@127.0.0.1:PORT/PATH``."""

    def __init__(self, root: Path) -> None:
        if not SSHD.exists():
            raise GitServerUnavailable(
                "sshd is not installed (Debian package openssh-server; `make test` installs it)"
            )
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.port = free_port()
        self.log = root / "sshd.log"
        self.client_key = keygen(root / "client_key", "edgefleet-test-client")
        self.authorized = root / "authorized_keys"
        self.authorize(self.client_key)
        self.process: subprocess.Popen[bytes] | None = None
        self.host_key = root / "host_key"

    def authorize(self, key: Path) -> None:
        self.authorized.write_text(key.with_name(key.name + ".pub").read_text())
        self.authorized.chmod(0o600)

    def known_hosts_line(self) -> str:
        kind, body = self.host_key.with_name("host_key.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {body}\n"

    def url(self, repo: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repo}"

    def start(self, *, new_host_key: bool = False) -> SshGitServer:
        if new_host_key or not self.host_key.exists():
            for old in (self.host_key, self.host_key.with_name("host_key.pub")):
                old.unlink(missing_ok=True)
            keygen(self.host_key, "edgefleet-test-host")
        config = self.root / "sshd_config"
        config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.root / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.authorized}\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "PermitRootLogin prohibit-password\n"
            f"AllowUsers {self.user}\n"
            "LogLevel VERBOSE\n"
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation
        self.process = subprocess.Popen(
            [str(SSHD), "-D", "-f", str(config), "-E", str(self.log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.process, self.log)
        return self

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


class HttpGitServer:
    """lighttpd on 127.0.0.1 running ``git http-backend`` for the repositories in
    ``root/repos``, behind basic auth with the users of a plain user file."""

    def __init__(self, root: Path, *, user: str, password: str) -> None:
        if not LIGHTTPD.exists():
            raise GitServerUnavailable(
                "lighttpd is not installed (Debian package lighttpd; `make test` installs it)"
            )
        if not HTTP_BACKEND.exists():
            raise GitServerUnavailable(f"{HTTP_BACKEND} is missing (Debian package git)")
        self.root = root
        self.repos = root / "repos"
        self.repos.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.users = root / "users"
        self.set_password(user, password)
        self.log = root / "lighttpd-error.log"
        self.process: subprocess.Popen[bytes] | None = None

    def set_password(self, user: str, password: str) -> None:
        self.users.write_text(f"{user}:{password}\n")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/git/{name}"

    def start(self) -> HttpGitServer:
        (self.root / "www").mkdir(exist_ok=True)
        config = self.root / "lighttpd.conf"
        config.write_text(
            f'server.document-root = "{self.root / "www"}"\n'
            f'server.bind = "127.0.0.1"\n'
            f"server.port = {self.port}\n"
            f'server.errorlog = "{self.log}"\n'
            'server.modules = ("mod_alias", "mod_setenv", "mod_auth", "mod_authn_file",'
            ' "mod_cgi", "mod_accesslog")\n'
            f'accesslog.filename = "{self.root / "access.log"}"\n'
            f'alias.url = ("/git" => "{HTTP_BACKEND}")\n'
            '$HTTP["url"] =~ "^/git" {\n'
            '  cgi.assign = ("" => "")\n'
            f'  setenv.set-environment = ("GIT_PROJECT_ROOT" => "{self.repos}",'
            ' "GIT_HTTP_EXPORT_ALL" => "")\n'
            "}\n"
            'auth.backend = "plain"\n'
            f'auth.backend.plain.userfile = "{self.users}"\n'
            'auth.require = ("/git" => ("method" => "basic", "realm" => "fleet",'
            ' "require" => "valid-user"))\n'
        )
        with (self.root / "lighttpd-stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(
                [str(LIGHTTPD), "-D", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        _wait_for_port(self.port, self.process, self.root / "lighttpd-stderr.log")
        return self

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


def bare_clone(source: Path, target: Path) -> Path:
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(source), str(target)], check=True, capture_output=True
    )
    # served over HTTP: let http-backend answer without a per-repository opt-in
    subprocess.run(
        ["git", "-C", str(target), "config", "http.receivepack", "false"],
        check=True,
        capture_output=True,
    )
    return target


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
