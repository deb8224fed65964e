"""SOPS documents with age: files written by the ``sops`` command open with their published
keys to their published plaintexts; documents sealed here open again; a tampered value, MAC or
unencrypted field, a moved value and a wrong key are refused with a reason that never carries
a value; YAML scalars are read as SOPS (Go's yaml.v3) reads them, since they make the MAC."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from agent.secrets.documents import Rule, Timestamp, is_sops, load_yaml, read_document, resolve
from agent.secrets.errors import (
    MacMismatch,
    MalformedSecret,
    NoMatchingKey,
    NothingToSeal,
    TamperedSecret,
)
from agent.secrets.keys import generate, parse_identities
from agent.secrets.opening import open_document
from agent.secrets.sealing import seal_document
from agent.secrets.values import go_float
from tests.support.secrets import (
    NOW,
    POS_TOKEN,
    flip_value,
    published,
    published_identities,
    sealed_for,
)

PLAINTEXT = "enr-7f3k9q2m4x8v"

# (file, identity file, the published plaintexts by key, the encrypted keys)
WRITTEN_BY_SOPS = [
    ("kustomize-controller/age.yaml", "kustomize-controller/age-key.txt",
     {("stringData", "key"): "value"}, ("stringData.key",)),
    ("kustomize-controller/merge1.yaml", "kustomize-controller/age-key.txt",
     {("stringData", "key"): "merge1"}, ("stringData.key",)),
    ("kustomize-controller/merge2.yaml", "kustomize-controller/age-key.txt",
     {("stringData", "merge2"): "merge2"}, ("stringData.merge2",)),
    ("kustomize-controller/file.json", "kustomize-controller/age-key.txt",
     {("data",): "value"}, ("data",)),
    ("kustomize-controller/global-secret.yaml", "kustomize-controller/age-global-key.txt",
     {("stringData", "key"): "global-value", ("metadata", "namespace"): "default"},
     ("stringData.key",)),
    ("helm-secrets/secrets.age.yaml", "helm-secrets/age-key.txt",
     {("service", "port"): 92, ("global_secret",): "global_age"},
     ("global_secret", "key", "service.port")),
]  # fmt: skip


def at(document: dict[str, object], path: tuple[str, ...]) -> object:
    value: object = document
    for key in path:
        assert isinstance(value, dict)
        value = value[key]
    return value


@pytest.mark.parametrize(("name", "key", "expected", "keys"), WRITTEN_BY_SOPS)
def test_files_written_by_sops_open_to_their_published_plaintexts(
    name: str, key: str, expected: dict[tuple[str, ...], object], keys: tuple[str, ...]
) -> None:
    text = published(name)
    assert is_sops(text)
    opened = open_document(text, published_identities(key))
    (document,) = load_yaml(opened.text)
    for path, value in expected.items():
        assert at(document, path) == value
    assert "sops" not in document and "ENC[" not in opened.text
    assert opened.keys == keys


def test_a_multi_line_value_opens_to_the_published_plaintext() -> None:
    opened = open_document(
        published("helm-secrets/secrets.age.yaml"), published_identities("helm-secrets/age-key.txt")
    )
    (document,) = load_yaml(opened.text)
    (plain,) = load_yaml(published("helm-secrets/secrets.dec.yaml"))
    assert document["key"] == plain["key"]
    assert str(document["key"]).startswith("-----BEGIN PGP MESSAGE-----\n")


def test_a_file_written_by_sops_refuses_another_key() -> None:
    other = generate()
    with pytest.raises(NoMatchingKey) as refused:
        open_document(published("kustomize-controller/age.yaml"), [other])
    message = str(refused.value)
    assert "age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29" in message
    assert other.recipient in message


@pytest.mark.parametrize(
    ("edit", "error", "reason"),
    [
        # one bit of a value's ciphertext
        (lambda t: flip_value(t, "key"), TamperedSecret, "stringData.key does not authenticate"),
        # the MAC's ciphertext, or the time that authenticates it
        (lambda t: flip_value(t, "mac"), TamperedSecret, "MAC does not authenticate"),
        (
            lambda t: t.replace("2024-11-12T13:33:42Z", "2024-11-12T13:33:43Z"),
            TamperedSecret,
            "MAC does not authenticate",
        ),
        # an unencrypted field the MAC covers
        (lambda t: t.replace("name: age", "name: other"), MacMismatch, "MAC does not match"),
        # a value moved under another key: its path is its additional data
        (
            lambda t: t.replace("  key: ENC", "  moved: ENC"),
            TamperedSecret,
            "stringData.moved does not authenticate",
        ),
        # a value written back in plaintext
        (
            lambda t: re.sub(r"key: ENC\[[^\]]+\]", "key: value", t),
            MalformedSecret,
            "stringData.key is not encrypted",
        ),
    ],
)
def test_a_tampered_file_written_by_sops_is_refused(
    edit: object, error: type[Exception], reason: str
) -> None:
    text = published("kustomize-controller/age.yaml")
    assert callable(edit)
    tampered = edit(text)
    assert tampered != text
    with pytest.raises(error) as refused:
        open_document(tampered, published_identities("kustomize-controller/age-key.txt"))
    assert reason in str(refused.value)
    assert "value" not in str(refused.value).replace("values", "")


def test_sealed_here_opens_for_each_recipient_and_for_no_one_else() -> None:
    store, central, stranger = generate(), generate(), generate()
    sealed = sealed_for(store, central)
    assert PLAINTEXT not in sealed and is_sops(sealed)
    assert read_document(sealed).encrypted_keys() == ("stringData.token",)
    for identity in (store, central):
        opened = open_document(sealed, [identity])
        assert load_yaml(opened.text) == load_yaml(POS_TOKEN)
    with pytest.raises(NoMatchingKey):
        open_document(sealed, [stranger])


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda t: flip_value(t, "token"), TamperedSecret),
        (lambda t: flip_value(t, "mac"), TamperedSecret),
        (lambda t: t.replace("namespace: pos", "namespace: kube-system"), MacMismatch),
        (lambda t: t.replace("type: Opaque\n", ""), MacMismatch),
    ],
)
def test_sealed_here_and_tampered_is_refused(edit: object, error: type[Exception]) -> None:
    store = generate()
    assert callable(edit)
    with pytest.raises(error):
        open_document(edit(sealed_for(store)), [store])


def test_the_default_rule_seals_every_value_but_unencrypted_ones() -> None:
    store = generate()
    text = "password: hunter2\nport: 5432\nhost_unencrypted: db.local\n"
    sealed = seal_document(text, [store.recipient], rule=Rule(), now=NOW)
    assert "hunter2" not in sealed and "5432" not in sealed and "db.local" in sealed
    assert "unencrypted_suffix: _unencrypted" in sealed
    assert load_yaml(open_document(sealed, [store]).text) == load_yaml(text)


def test_nothing_to_seal_and_already_sealed_are_refused() -> None:
    store = generate()
    with pytest.raises(NothingToSeal):
        seal_document("kind: ConfigMap\nmetadata: {name: x}\n", [store.recipient], now=NOW)
    with pytest.raises(MalformedSecret, match="already a SOPS document"):
        seal_document(sealed_for(store), [store.recipient], now=NOW)
    with pytest.raises(MalformedSecret, match="not an age recipient"):
        seal_document(POS_TOKEN, ["age1nope"], now=NOW)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda t: t.replace("version: 3.9.0", "version: 2.0.0"), "sops.version must be 3.x"),
        (lambda t: re.sub(r"  mac: .*\n", "", t), "sops.mac is missing"),
        (lambda t: t.replace("recipient: age1", "recipient: pgp1"), "not an age recipient"),
        (
            lambda t: t.replace("  version:", "  unencrypted_suffix: _plain\n  version:"),
            "more than one encryption rule",
        ),
        (lambda t: t.replace("  version:", "  key_groups: [{}]\n  version:"), "not supported"),
        (lambda t: t.replace("kind: Secret", "kind: [Secret"), "not valid YAML"),
    ],
)
def test_a_malformed_document_says_what_is_wrong(edit: object, reason: str) -> None:
    assert callable(edit)
    with pytest.raises(MalformedSecret, match=re.escape(reason)):
        read_document(edit(published("kustomize-controller/age.yaml")))


def test_identity_files_are_read_as_age_keygen_writes_them() -> None:
    (identity,) = published_identities("kustomize-controller/age-key.txt")
    assert identity.recipient == "age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29"
    assert identity.secret not in repr(identity)
    with pytest.raises(MalformedSecret, match="keys.txt:2: not an age identity"):
        parse_identities("# a comment\nAGE-SECRET-KEY-1NOPE\n", source="keys.txt")


# -- scalars as yaml.v3 reads them ---------------------------------------------------------

SCALARS = [
    ("plain", "plain"), ("yes", "yes"), ("on", "on"), ("True", True), ("false", False),
    ("~", None), ("", None), ("null", None), ("12", 12), ("-12", -12), ("+12", 12),
    ("0777", 511), ("08", 8.0), ("0x1F", 31), ("0o17", 15), ("0b101", 5), ("1_000", 1000),
    ("1.5", 1.5), (".5", 0.5), ("1e3", 1000.0), ("+.inf", math.inf), ("12:30", "12:30"),
    ("2024-01-02", Timestamp("2024-01-02T00:00:00Z")),
    ("2024-1-2T3:04:05.500+01:00", Timestamp("2024-01-02T03:04:05.5+01:00")),
    ("2024-13-02", "2024-13-02"), ("18446744073709551616", 18446744073709551616.0),
]  # fmt: skip


@pytest.mark.parametrize(("text", "value"), SCALARS)
def test_plain_scalars_read_as_yaml_v3_reads_them(text: str, value: object) -> None:
    found = resolve(text)
    assert found == value and type(found) is type(value)
    assert resolve(text, quoted=True) == text


def test_an_integer_sops_cannot_walk_is_refused() -> None:
    with pytest.raises(MalformedSecret, match="not supported"):
        resolve("9223372036854775808")  # a uint64 to yaml.v3


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (0.1, "0.1"), (1e21, "1000000000000000000000"), (-0.0, "-0"),
     (1.5e-07, "0.00000015"), (math.inf, "+Inf"), (math.nan, "NaN")],
)  # fmt: skip
def test_floats_hash_as_go_formats_them(value: float, text: str) -> None:
    assert go_float(value) == text


_KEYS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1)
_LEAVES = (
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.none()
)
_TREES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_KEYS.filter(lambda k: k != "sops"), _TREES, min_size=1, max_size=4))
def test_any_document_sealed_here_opens_to_the_same_values(document: dict[str, object]) -> None:
    """Every value, whatever its type or text, comes back as it went in, and its plaintext
    reads back with the same types under YAML 1.1 too, as Kubernetes reads it."""
    store = generate()
    dumped = _dump(document)
    try:
        sealed = seal_document(dumped, [store.recipient], rule=Rule(), now=NOW)
    except NothingToSeal:
        return  # nothing but nulls and empty strings
    opened = open_document(sealed, [store]).text
    assert load_yaml(opened) == [document]
    old = YAML(typ="safe")
    old.version = (1, 1)
    assert old.load(opened) == document


def _dump(document: dict[str, object]) -> str:
    from io import StringIO

    out = StringIO()
    YAML(typ="safe").dump(document, out)
    return out.getvalue()
