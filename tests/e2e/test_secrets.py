"""A store's secret end to end: sealed with SOPS for its appliance in git, it arrives decrypted
in the store's node (mode 0600) on the real Docker engine, while the reconciler's database, its
log, its /v1/desired answers, ``render`` and ``plan`` only ever hold the ciphertext. A secret
the appliance cannot open is refused with the reason, reported upstream, and the node keeps
what it had."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from agent.secrets.keys import generate
from tests.support.appliances import MANIFESTS
from tests.support.gitops import Loop, wait_for
from tests.support.secrets import (
    POS_TOKEN,
    STORE_SECRET,
    add_store_secret,
    flip_value,
    key_file,
    sealed_for,
)

SITE, APPLIANCE = "store-1", "store-1-a"
TOKEN = "enr-7f3k9q2m4x8v"


def node_file(loop: Loop, name: str) -> str | None:
    """The content of the store's control-plane node's manifest ``...-pos-<name>``, if any."""
    container = loop.containers(APPLIANCE).get("pos-main-1")
    if container is None:
        return None
    found = loop.client.containers.get(container).exec_run(["ls", "-l", MANIFESTS])
    for line in found.output.decode().splitlines():
        if line.endswith(f"-pos-{name}"):
            path = f"{MANIFESTS}/{line.split()[-1]}"
            text = loop.client.containers.get(container).exec_run(["cat", path]).output.decode()
            return f"{line.split()[0]}\n{text}"
    return None


def cli(loop: Loop, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return done.stdout


def test_a_sites_secret_is_plaintext_in_its_node_alone(loop: Loop, tmp_path: Path) -> None:
    store = generate()
    add_store_secret(loop.fleet, store)
    loop.commit("store-1 keeps its POS enrollment token sealed for its appliance")
    key_file(loop.work / APPLIANCE, store)  # as edge-installer leaves it
    loop.start_agent(APPLIANCE)

    # the node holds the plaintext, readable by its owner alone
    written = wait_for(lambda: node_file(loop, "pos-token.yaml"), 90, "the secret in the node")
    assert isinstance(written, str)
    mode, text = written.split("\n", 1)
    assert mode == "-rw-------"
    assert f'token: "{TOKEN}"' in text and "sops" not in text

    # everything on the reconciler's side holds the ciphertext only
    token = (loop.work / APPLIANCE / "token").read_text().strip()
    desired = httpx.get(
        f"{loop.url}/v1/desired", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert desired.status_code == 200 and '"encryption":"sops"' in desired.text.replace(" ", "")
    assert "ENC[AES256_GCM" in desired.text and TOKEN not in desired.text
    rendered = tmp_path / "rendered"
    cli(loop, "render", str(loop.fleet.root), "--out", str(rendered))
    plans = [
        cli(loop, "plan", str(loop.fleet.root), "--base", "HEAD~1", "--head", "HEAD",
            "--format", form)
        for form in ("text", "markdown", "json")
    ]  # fmt: skip
    assert "secret added (keys: stringData.token)" in plans[0]
    database = [p for p in loop.work.glob("reconciler.db*") if p.is_file()]
    # the searches below can find what is there: the ciphertext is stored and rendered
    assert any(b"ENC[AES256_GCM" in p.read_bytes() for p in database)
    assert any(b"ENC[AES256_GCM" in p.read_bytes() for p in rendered.rglob("*.json"))
    for blob in [
        *(p.read_bytes() for p in database),
        (loop.work / "reconciler.log").read_bytes(),
        (loop.work / f"{APPLIANCE}.log").read_bytes(),
        *(p.read_bytes() for p in rendered.rglob("*") if p.is_file()),
        *(plan.encode() for plan in plans),
    ]:
        assert TOKEN.encode() not in blob

    # a sealed value changed by hand passes validation (no key there) but does not open on the
    # appliance: refused with the reason, reported upstream, and nothing changes
    tampered = flip_value(sealed_for(store, text=POS_TOKEN.replace(TOKEN, "enr-x")), "token")
    loop.fleet.write(STORE_SECRET, tampered)
    before = loop.containers(APPLIANCE)
    loop.commit("store-1: a token edited in its sealed file")

    def refusal() -> str:
        status = loop.site_status(SITE)
        for appliance in status.get("appliances", []):  # type: ignore[union-attr]
            if appliance["id"] == APPLIANCE and "does not open" in (appliance["error"] or ""):
                return str(appliance["error"])
        return ""

    reason = wait_for(refusal, 60, "the refusal reported upstream")
    assert "manifest 'pos-token.yaml' does not open: stringData.token does not authenticate" in str(
        reason
    )
    assert loop.containers(APPLIANCE) == before
    still = node_file(loop, "pos-token.yaml")
    assert still is not None and f'token: "{TOKEN}"' in still
