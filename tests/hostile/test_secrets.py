"""A sensitive value never reaches an error, a log, an annotation, an API answer or a file
others can read; credentials in a repository URL are never printed or logged."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from reconciler.service import Loop, RemoteSource
from reconciler.sources import SourceError, redacted
from tests.support.fleet import FleetFiles
from tests.support.git import git
from tests.support.hostile import (
    PROBE,
    REPO_ROOT,
    SECRET,
    Served,
    assert_not_leaked,
    edgefleet,
    files_holding,
    free_port,
    run_measured,
)
from tests.support.keys import signing_key
from tests.support.operators import VIEWER, write_token_file

BAD = "enr-NOT!valid-" + SECRET  # sensitive, and it fails the variable's regex
CLUSTER = "sites/store-1/clusters/pos.yaml"


def bad_value(fleet: FleetFiles) -> None:
    fleet.edit(CLUSTER, f'enrolToken: "{SECRET}"', f'enrolToken: "{BAD}"')


@pytest.mark.parametrize("form", ["text", "json", "github"])
def test_validate_masks_a_sensitive_value_that_fails_its_format(
    probed: FleetFiles, work: Path, form: str
) -> None:
    bad_value(probed)

    done = run_measured(edgefleet("validate", str(probed.root), "--format", form), work=work)

    assert done.code == 1
    assert "variable 'enrolToken' must match /enr-[0-9a-z-]{8,64}/ (got ***)" in done.out
    assert_not_leaked(SECRET, done.out, done.err)
    assert_not_leaked("NOT!valid", done.out, done.err)


def test_a_sensitive_default_that_fails_its_format_is_masked(
    probed: FleetFiles, work: Path
) -> None:
    probed.edit(
        "profiles/store-1.0.0.yaml",
        "      sensitive: true\n",
        f'      sensitive: true\n      default: "{BAD}"\n',
    )
    done = run_measured(edgefleet("validate", str(probed.root)), work=work)
    assert done.code == 1
    assert "default: variable 'enrolToken' must match" in done.out
    assert_not_leaked(SECRET, done.out, done.err)


@pytest.mark.parametrize(
    "payload",
    [
        "{{ {}[vars.enrolToken].x }}",
        "{{ vars.enrolToken|attr(vars.enrolToken) }}",
        "{{ values[vars.enrolToken] }}",
        "{{ vars.enrolToken ~ '' ~ site[vars.enrolToken] }}",
    ],
)
def test_a_template_cannot_put_a_sensitive_value_in_its_error(
    probed: FleetFiles, work: Path, payload: str
) -> None:
    (probed.root / PROBE).write_text(f"kind: ConfigMap\ndata:\n  a: {payload}\n")
    done = run_measured(edgefleet("render", str(probed.root), "--out", str(work / "o")), work=work)
    assert done.code == 1
    assert f"{PROBE}:3: undefined: " in done.out and "'***'" in done.out, done.out
    assert_not_leaked(SECRET, done.out, done.err)


def test_rendered_files_are_readable_by_their_owner_only(probed: FleetFiles, work: Path) -> None:
    (probed.root / PROBE).write_text(
        "kind: Secret\nmetadata:\n  name: enrol\nstringData:\n  token: {{ vars.enrolToken }}\n"
    )
    out = work / "shared" / "out"
    (work / "shared").mkdir(mode=0o755)
    os.chmod(work / "shared", 0o755)

    done = run_measured(edgefleet("render", str(probed.root), "--out", str(out)), work=work)

    assert done.code == 0, done.out
    holding = files_holding(SECRET, out)
    assert holding  # the desired state carries it to the agent, as it must
    for path in out.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {mode:o}"
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((work / "shared").stat().st_mode) == 0o755  # not ours to change


def test_the_server_masks_it_in_the_failure_it_serves_and_logs(served: Served) -> None:
    served.start()
    bad_value(served.fleet)
    sha = served.commit("a sensitive value that fails its format")

    outcome, errors = served.outcome(sha)

    assert outcome == "failed"
    assert any("must match /enr-[0-9a-z-]{8,64}/ (got ***)" in e for e in errors), errors
    answers = [served.status(), *(served.site(s) for s in ("store-1", "restaurant-7"))]
    assert_not_leaked(SECRET, served.log(), json.dumps(answers))


URL = f"http://edge:{SECRET}@127.0.0.1:{{port}}/fleet.git"


def test_serve_never_prints_the_credentials_of_a_repository_url(work: Path) -> None:
    (work / "bootstrap").write_text("bootstrap-token-0123456789abcdef")
    url = URL.format(port=free_port())  # nothing listens: every fetch fails
    port = free_port()
    with (work / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [*edgefleet("serve", url), "--bootstrap-token-file", str(work / "bootstrap"),
             "--signing-key", str(signing_key(work)), "--cache-dir", str(work / "cache"),
             "--operator-token-file", str(write_token_file(work / "operators")),
             "--db", f"sqlite:///{work / 'store.db'}", "--listen", f"127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )  # fmt: skip
    try:
        source: dict[str, object] = {}
        deadline = time.monotonic() + 30
        while not source.get("error"):
            assert time.monotonic() < deadline, (work / "serve.log").read_text()
            time.sleep(0.2)
            try:
                fleet = httpx.get(f"http://127.0.0.1:{port}/v1/fleet", headers=VIEWER).json()
            except (httpx.HTTPError, ValueError):
                continue
            source = fleet.get("source") or {}
    finally:
        process.terminate()
        process.wait(20)
    shown = f"http://***@127.0.0.1:{url.rsplit(':', 1)[1]}"
    assert str(source["url"]) == shown
    assert "fetch failed" in str(source["error"])
    assert_not_leaked(SECRET, json.dumps(source), (work / "serve.log").read_text())


def test_a_failed_fetch_is_logged_without_the_credentials(
    probed: FleetFiles, work: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = work / "cache"
    git(work, "clone", "-q", "--bare", str(probed.root), str(cache))
    url = URL.format(port=free_port())
    git(cache, "remote", "set-url", "origin", url)
    source = RemoteSource(url, cache, "main", interval=0.01)

    with pytest.raises(SourceError) as failed:
        source.fetch()
    loop = Loop(source, lambda _sha: None)
    with caplog.at_level(logging.DEBUG):
        changes = source.changes(loop.stop, loop.poke)
        next(changes)  # one fetch, which fails and is logged
        loop.stop.set()

    assert "***@127.0.0.1" in str(failed.value)
    assert "fetch failed" in caplog.text
    assert_not_leaked(SECRET, str(failed.value), caplog.text, repr(failed.value.__cause__))


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://user:pass@host/r.git", "https://***@host/r.git"),
        ("ssh://git:token@host:22/r", "ssh://***@host:22/r"),
        ("fetch https://tok@h/a and http://u:p@h/b", "fetch https://***@h/a and http://***@h/b"),
        ("git@github.com:acme/fleet.git", "git@github.com:acme/fleet.git"),  # a user, no secret
        ("https://host/r.git", "https://host/r.git"),
    ],
)
def test_credentials_are_redacted_from_any_url(text: str, shown: str) -> None:
    assert redacted(text) == shown
