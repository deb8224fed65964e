"""A throwaway PostgreSQL server for the store suite: ``initdb`` and ``pg_ctl`` from the
Debian ``postgresql`` package, run as a non-root user in a temporary folder, listening on a
unix socket only, logging to a file there, stopped and deleted at the end of the session."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


class PostgresUnavailable(Exception):
    """Why the tests cannot start PostgreSQL here."""


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL is not installed (Debian package postgresql; `make test` installs it "
            "as root)"
        )
    return Path(found[-1]).parent


class PostgresServer:
    def __init__(self) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as e:
            raise PostgresUnavailable(
                "psycopg is not installed: pip install 'psycopg[binary]'"
            ) from e
        self.bin = _binaries()
        self.root = Path(tempfile.mkdtemp(prefix="edgefleet-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.user = self._run_as()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    @staticmethod
    def _run_as() -> str | None:
        """PostgreSQL refuses to run as root: as root, use the ``postgres`` account."""
        if os.geteuid() != 0:
            return None
        for user in ("postgres", "nobody"):
            try:
                pwd.getpwnam(user)
                return user
            except KeyError:
                continue
        raise PostgresUnavailable("running as root and no postgres or nobody account exists")

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *args] if self.user else list(args)

    def start(self) -> PostgresServer:
        subprocess.run(
            self._cmd(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ),
            check=True,
            capture_output=True,
        )
        options = f"-k {self.root} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
        subprocess.run(
            self._cmd(
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                "30",
                "start",
            ),
            check=True,
            capture_output=True,
        )
        return self

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.root}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host=str(self.root), user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name

    def stop(self) -> None:
        subprocess.run(
            self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"),
            capture_output=True,
        )
        time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    server = PostgresServer()
    try:
        return server.start()
    except (subprocess.CalledProcessError, OSError) as e:
        log = server.log.read_text() if server.log.exists() else ""
        server.stop()
        detail = getattr(e, "stderr", b"") or b""
        raise PostgresUnavailable(
            f"PostgreSQL would not start: {detail.decode(errors='replace')[-500:]}{log[-500:]}"
        ) from e
