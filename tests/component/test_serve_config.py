"""`edgefleet serve` refuses a configuration it cannot run with in one line and exit 1,
before it opens anything: token files, the database URL, and `--version` on all commands."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.fleet import FleetFiles
from tests.support.git import git
from tests.support.keys import signing_key

from .conftest import CliResult

GOOD_TOKEN = "bootstrap-token-0123456789"


@pytest.mark.parametrize(
    ("token", "db", "message"),
    [
        (None, None, "bootstrap token file {token}: No such file or directory"),
        ("", None, "bootstrap token file {token} is empty"),
        ("  \n", None, "bootstrap token file {token} is empty"),
        ("fifteen-chars-x", None, "bootstrap token file {token}: the token must have at least "
         "16 characters (it has 15)"),
        (GOOD_TOKEN, "not a url", "not a database URL: use sqlite:///PATH or "
         "postgresql+psycopg://USER@HOST/DB"),
        (GOOD_TOKEN, "mysql://u:secret@db/x", "unsupported database 'mysql': use sqlite or "
         "postgresql"),
    ],
)  # fmt: skip
def test_a_bad_token_file_or_database_is_one_line_and_exit_1(
    run_cli: Callable[..., CliResult],
    fleet: FleetFiles,
    tmp_path: Path,
    token: str | None,
    db: str | None,
    message: str,
) -> None:
    git(fleet.root, "init", "-q", "-b", "main")
    git(fleet.root, "add", "-A")
    git(fleet.root, "commit", "-qm", "the fleet")
    token_file = tmp_path / "bootstrap"
    if token is not None:
        token_file.write_text(token)
    url = db or f"sqlite:///{tmp_path / 'store.db'}"
    done = run_cli(
        "serve", str(fleet.root), "--bootstrap-token-file", str(token_file), "--db", url,
        "--listen", "127.0.0.1:0", "--signing-key", str(signing_key(tmp_path / "keys")),
    )  # fmt: skip
    assert (done.code, done.err) == (1, f"edgefleet: {message.format(token=token_file)}\n")
    assert "secret" not in done.err


@pytest.mark.parametrize(
    ("command", "name"),
    [("edgefleet", "edgefleet"), ("edgefleet-agent", "edgefleet-agent"),
     ("edge-installer", "edge-installer")],
)  # fmt: skip
def test_every_command_tells_its_version(command: str, name: str) -> None:
    script = Path(sys.executable).with_name(command)
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith(f"{name} ") and done.stdout.count(".") >= 2, done.stdout
