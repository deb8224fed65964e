"""Secrets in the fleet repository, through ``edgefleet validate``, ``render`` and ``secret``:
a manifest from a file (relative to its document, never out of the repository), a SOPS file
that must be well formed and sealed for every appliance that receives it, a plaintext Secret
flagged, render passing the ciphertext through untouched, and ``edgefleet secret encrypt``
sealing files that the appliances' identities open."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.contract import DesiredState
from agent.secrets.documents import is_sops, load_yaml
from agent.secrets.keys import Identity, generate
from agent.secrets.opening import open_document
from tests.support.fleet import FleetFiles
from tests.support.secrets import (
    POS_TOKEN,
    STORE_APPLIANCE,
    STORE_CLUSTER,
    STORE_SECRET,
    add_store_secret,
    give_recipient,
    sealed_for,
)

TOKEN = "enr-7f3k9q2m4x8v"
FILE_LINE = "file: secrets/pos-token.sops.yaml"
PLAIN_SECRET = POS_TOKEN


@pytest.fixture
def store() -> Identity:
    return generate()


def errors(run_cli: Callable[..., object], fleet: FleetFiles, *flags: str) -> dict[str, object]:
    result = run_cli("validate", str(fleet.root), "--format", "json", *flags)
    report: dict[str, object] = json.loads(result.out)  # type: ignore[attr-defined]
    report["code"] = result.code  # type: ignore[attr-defined]
    return report


def test_a_sealed_secret_for_the_store_appliance_validates(
    fleet: FleetFiles, run_cli, store: Identity
) -> None:
    add_store_secret(fleet, store)
    report = errors(run_cli, fleet)
    assert report == {"valid": True, "errors": [], "warnings": [], "code": 0}


def _no_recipient(f: FleetFiles, store: Identity) -> None:
    add_store_secret(f, store)
    f.edit(STORE_APPLIANCE, f"  ageRecipient: {store.recipient}\n", "")


def _other_recipient(f: FleetFiles, store: Identity) -> None:
    add_store_secret(f, store)
    f.write(STORE_SECRET, sealed_for(generate()))


def _no_mac(f: FleetFiles, store: Identity) -> None:
    add_store_secret(f, store)
    text = f.read(STORE_SECRET)
    f.write(STORE_SECRET, "".join(line for line in text.splitlines(True) if "  mac:" not in line))


def _plaintext_left(f: FleetFiles, store: Identity) -> None:
    add_store_secret(f, store)
    text = f.read(STORE_SECRET)
    start = text.index("token: ENC[")
    f.write(STORE_SECRET, text[:start] + f"token: {TOKEN}" + text[text.index("\n", start) :])


def _file(path: str) -> Callable[[FleetFiles, Identity], None]:
    def mutate(f: FleetFiles, store: Identity) -> None:
        add_store_secret(f, store)
        f.edit(STORE_CLUSTER, FILE_LINE, f"file: {path}")
        f.remove(STORE_SECRET)  # no longer named: it would be a stray file

    return mutate


def _both(f: FleetFiles, store: Identity) -> None:
    add_store_secret(f, store)
    f.edit(STORE_CLUSTER, FILE_LINE, f"{FILE_LINE}\n      content: 'a: 1'")


def _bad_recipient(f: FleetFiles, store: Identity) -> None:
    f.edit(STORE_APPLIANCE, "spec:\n", "spec:\n  ageRecipient: age1notakey\n")


def _other_site(f: FleetFiles, store: Identity) -> None:
    add_store_secret(f, store)
    f.write("sites/restaurant-7/secrets/pos-token.sops.yaml", f.read(STORE_SECRET))
    f.remove(STORE_SECRET)
    f.edit(STORE_CLUSTER, FILE_LINE, "file: ../../restaurant-7/secrets/pos-token.sops.yaml")


APPLIANCE_LINE = "ageRecipient:"
CASES = [
    ("appliance-without-recipient", _no_recipient, STORE_CLUSTER, FILE_LINE,
     "manifest pos-token.yaml is a SOPS file, and appliance store-1-a, which receives it, has no "
     "spec.ageRecipient (site store-1, cluster pos)"),
    ("sealed-for-another-appliance", _other_recipient, STORE_CLUSTER, FILE_LINE,
     "manifest pos-token.yaml: sites/store-1/clusters/secrets/pos-token.sops.yaml is not "
     "encrypted for appliance store-1-a (age1"),
    ("sops-without-mac", _no_mac, STORE_CLUSTER, FILE_LINE,
     "is not a well-formed SOPS document: sops.mac is missing"),
    ("sops-value-left-in-plaintext", _plaintext_left, STORE_CLUSTER, FILE_LINE,
     "is not a well-formed SOPS document: stringData.token is not encrypted"),
    ("file-outside-the-repository", _file("../../../../../etc/passwd"), STORE_CLUSTER,
     "file: ../../", "manifest file '../../../../../etc/passwd' is outside the repository"),
    ("file-in-a-hidden-folder", _file("../../../.git/config"), STORE_CLUSTER, "file: ../../",
     "is in a hidden folder or is hidden"),
    ("file-missing", _file("secrets/nothing.yaml"), STORE_CLUSTER, "file: secrets/nothing",
     "manifest file 'secrets/nothing.yaml' does not exist "
     "(sites/store-1/clusters/secrets/nothing.yaml)"),
    ("file-absolute", _file("/etc/passwd"), STORE_CLUSTER, "file: /etc",
     "'/etc/passwd' must be a relative path"),
    ("content-and-file", _both, STORE_CLUSTER, "- name: pos-token.yaml",
     "a manifest has either content or file"),
    ("file-in-another-site", _other_site, STORE_CLUSTER, "file: ../../",
     "is in another site's folder; site store-1 names files in its own folder or outside sites/"),
    ("recipient-not-an-age-key", _bad_recipient, STORE_APPLIANCE, APPLIANCE_LINE,
     "'age1notakey' is not an age recipient"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "path", "needle", "reason"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_a_broken_secret_reports_file_line_and_reason(
    fleet: FleetFiles,
    run_cli,
    store: Identity,
    mutate: Callable[[FleetFiles, Identity], None],
    path: str,
    needle: str,
    reason: str,
) -> None:
    mutate(fleet, store)
    report = errors(run_cli, fleet)
    assert report["code"] == 1
    (error,) = report["errors"]  # type: ignore[misc]
    assert (error["file"], error["line"]) == (path, fleet.line_of(path, needle)), error
    assert reason in error["message"]
    assert TOKEN not in json.dumps(report)


def test_a_manifest_file_is_no_stray_file_and_a_stray_one_still_is(
    fleet: FleetFiles, run_cli, store: Identity
) -> None:
    add_store_secret(fleet, store)
    fleet.write("sites/store-1/clusters/secrets/forgotten.yaml", "a: 1\n")
    report = errors(run_cli, fleet)
    (error,) = report["errors"]  # type: ignore[misc]
    assert error["file"] == "sites/store-1/clusters/secrets/forgotten.yaml"
    assert error["message"].startswith("unexpected file")


def test_a_plaintext_secret_is_a_warning_or_with_the_flag_an_error(
    fleet: FleetFiles, run_cli, store: Identity
) -> None:
    add_store_secret(fleet, store)
    fleet.write(STORE_SECRET, PLAIN_SECRET)
    where = (STORE_CLUSTER, fleet.line_of(STORE_CLUSTER, FILE_LINE))
    reason = "is a Kubernetes Secret with data in plaintext; seal it with SOPS"

    warned = errors(run_cli, fleet)
    assert warned["code"] == 0 and warned["errors"] == []
    (warning,) = warned["warnings"]  # type: ignore[misc]
    assert (warning["file"], warning["line"]) == where and reason in warning["message"]
    text = run_cli("validate", str(fleet.root))
    assert text.code == 0 and f"{where[0]}:{where[1]}: warning: manifest pos-token.yaml" in text.out

    refused = errors(run_cli, fleet, "--forbid-plaintext-secrets")
    assert refused["code"] == 1 and refused["warnings"] == []
    (error,) = refused["errors"]  # type: ignore[misc]
    assert (error["file"], error["line"]) == where and reason in error["message"]


def test_a_plaintext_secret_written_in_a_profile_is_flagged(fleet: FleetFiles, run_cli) -> None:
    profile = "profiles/store-1.0.0.yaml"
    fleet.edit(
        profile,
        "      manifests:\n",
        "      manifests:\n"
        "        - name: db.yaml\n"
        "          content: |\n"
        "            kind: Secret\n"
        "            stringData: {password: hunter2}\n",
    )
    report = errors(run_cli, fleet, "--forbid-plaintext-secrets")
    (error,) = report["errors"]  # type: ignore[misc]
    content = fleet.line_of(profile, "- name: db.yaml") + 1  # its content: line
    assert (error["file"], error["line"]) == (profile, content)
    assert "manifest db.yaml is a Kubernetes Secret with data in plaintext" in error["message"]
    assert "hunter2" not in error["message"]


def test_render_passes_the_sealed_file_through_and_no_template_sees_it(
    fleet: FleetFiles, run_cli, store: Identity, tmp_path: Path
) -> None:
    # a template expression in the sealed document stays as written: it is never rendered
    add_store_secret(fleet, store, text=POS_TOKEN.replace("namespace: pos", "namespace: '{{ x }}'"))
    sealed = fleet.read(STORE_SECRET)
    out = tmp_path / "out"
    result = run_cli("render", str(fleet.root), "--out", str(out))
    assert result.code == 0, result.out + result.err
    state = DesiredState.model_validate_json(
        (out / "store-1/appliances/store-1-a.json").read_text()
    )
    (cluster,) = state.clusters
    secret = cluster.manifests[-1]
    assert (secret.pack, secret.name, secret.encryption) == ("pos", "pos-token.yaml", "sops")
    assert secret.content == sealed
    assert '"encryption":"sops"' in state.canonical_json().decode()
    for path in out.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(), path
    # a state without secrets serializes as before: no encryption field at all
    other = (out / "restaurant-7/appliances/restaurant-7-a.json").read_text()
    assert '"encryption"' not in other


def test_secret_encrypt_seals_for_a_site_and_for_the_fleet(
    fleet: FleetFiles, run_cli, store: Identity, tmp_path: Path
) -> None:
    diner = generate()
    give_recipient(fleet, STORE_APPLIANCE, store)
    give_recipient(fleet, "sites/restaurant-7/appliances/restaurant-7-a.yaml", diner)
    plain = tmp_path / "pos-token.yaml"
    plain.write_text(POS_TOKEN)

    result = run_cli("secret", "encrypt", str(plain), "--recipients-for", "store-1",
                     "--repo", str(fleet.root))  # fmt: skip
    assert result.code == 0, result.err
    assert f"sealed {plain} for 1 recipient (keys: stringData.token)" in result.out
    sealed = plain.read_text()
    assert is_sops(sealed) and TOKEN not in sealed
    assert load_yaml(open_document(sealed, [store]).text) == load_yaml(POS_TOKEN)

    everyone = tmp_path / "everyone.sops.yaml"
    plain.write_text(POS_TOKEN)
    result = run_cli("secret", "encrypt", str(plain), "--all", "--repo", str(fleet.root),
                     "--out", str(everyone))  # fmt: skip
    assert result.code == 0 and plain.read_text() == POS_TOKEN
    assert "for 2 recipients" in result.out
    for identity in (store, diner):
        assert TOKEN in open_document(everyone.read_text(), [identity]).text
    # hospital-1's hypervisors have no recipient: they are named, not silently left out
    assert "appliance hospital-1-hv1 has no spec.ageRecipient" in result.err


def test_secret_encrypt_refuses_what_it_cannot_seal(
    fleet: FleetFiles, run_cli, tmp_path: Path
) -> None:
    plain = tmp_path / "pos-token.yaml"
    plain.write_text(POS_TOKEN)
    args = ("secret", "encrypt", str(plain), "--repo", str(fleet.root))
    nobody = run_cli(*args, "--recipients-for", "store-1")
    assert nobody.code == 1 and "no appliance to seal for has an ageRecipient" in nobody.err
    assert run_cli(*args, "--recipients-for", "nowhere").code == 2
    bad = run_cli(*args, "--recipients-for", "store-1", "--encrypted-regex", "(")
    assert bad.code == 2 and "--encrypted-regex: not a regular expression" in bad.err
    give_recipient(fleet, STORE_APPLIANCE, generate())
    config = tmp_path / "config.yaml"
    config.write_text("kind: ConfigMap\nmetadata: {name: x}\n")
    nothing = run_cli("secret", "encrypt", str(config), "--repo", str(fleet.root),
                      "--recipients-for", "store-1")  # fmt: skip
    assert nothing.code == 1 and "no value is selected by encrypted_regex" in nothing.err
    assert config.read_text() == "kind: ConfigMap\nmetadata: {name: x}\n"
    assert plain.read_text() == POS_TOKEN


def test_secret_recipients_lists_a_sites_recipients(
    fleet: FleetFiles, run_cli, store: Identity
) -> None:
    give_recipient(fleet, STORE_APPLIANCE, store)
    found = run_cli("secret", "recipients", "store-1", "--repo", str(fleet.root))
    assert (found.code, found.out) == (0, f"{store.recipient}\n")
    none = run_cli("secret", "recipients", "hospital-1", "--repo", str(fleet.root))
    assert none.code == 1 and none.out == "" and "hospital-1-hv2 has no" in none.err
