"""Pack versions: exact versions, trains, and repository packs overriding built-in ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.packs import load_registry
from reconciler.packs import registry as registry_module
from reconciler.sources import DirectoryTree


def write_pack(
    root: Path, name: str, version: str, layer: str = "addon", presets: str = ""
) -> None:
    folder = root / name / version
    folder.mkdir(parents=True)
    (folder / "pack.yaml").write_text(
        f"name: {name}\nversion: {version}\nlayer: {layer}\ndescription: test\n"
    )
    (folder / "presets.yaml").write_text(presets or "presets: []\n")


@pytest.fixture
def roots(tmp_path: Path) -> tuple[DirectoryTree, DirectoryTree]:
    builtin, repo = tmp_path / "builtin", tmp_path / "repo"
    for version in ("1.2.0", "1.10.1", "1.10.3", "2.0.0", "2.1.0rc1"):
        write_pack(builtin, "mon", version)
    write_pack(repo / "packs", "mon", "1.10.3", presets="presets:\n  - {name: big, group: size}\n")
    write_pack(repo / "packs", "mon", "1.11.0")
    return DirectoryTree(builtin), DirectoryTree(repo)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1.x", "1.11.0"),
        ("1.10.x", "1.10.3"),
        ("1.2.x", "1.2.0"),
        ("2.x", "2.0.0"),  # a release candidate is never picked by a train
        ("1.10.1", "1.10.1"),
        ("3.x", None),
        ("1.9.x", None),
        ("1.10.2", None),
        ("not-a-version", None),
    ],
)
def test_resolve(
    roots: tuple[DirectoryTree, DirectoryTree], spec: str, expected: str | None
) -> None:
    builtin, repo = roots
    registry, problems = load_registry([(builtin, ""), (repo, "packs")])
    assert problems == []
    found = registry.resolve("mon", spec)
    assert (found.version if found else None) == expected


def test_a_name_and_spec_are_matched_against_the_versions_once(
    roots: tuple[DirectoryTree, DirectoryTree], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every cluster of a fleet resolves the same few layers: ten thousand sites must not
    parse every version of every pack again."""
    builtin, repo = roots
    registry, _ = load_registry([(builtin, ""), (repo, "packs")])
    matched: list[str] = []
    real = registry_module.version_matches

    def counted(spec: str, version: str) -> bool:
        matched.append(spec)
        return real(spec, version)

    monkeypatch.setattr(registry_module, "version_matches", counted)
    first = [registry.resolve("mon", spec) for spec in ("1.x", "3.x")]
    calls = len(matched)
    assert calls > 0
    for _ in range(100):
        assert [registry.resolve("mon", spec) for spec in ("1.x", "3.x")] == first
    assert len(matched) == calls
    assert first[0] is not None and first[0].version == "1.11.0" and first[1] is None


def test_repository_pack_overrides_built_in_version(
    roots: tuple[DirectoryTree, DirectoryTree],
) -> None:
    builtin, repo = roots
    registry, _ = load_registry([(builtin, ""), (repo, "packs")])
    found = registry.resolve("mon", "1.10.3")
    assert found is not None and found.tree is repo and found.preset("big") is not None


def test_pack_yaml_must_match_its_folder(tmp_path: Path) -> None:
    write_pack(tmp_path, "mon", "1.0.0")
    (tmp_path / "mon" / "1.0.0" / "pack.yaml").write_text(
        "name: mon\nversion: 1.0.1\nlayer: addon\n"
    )
    _, problems = load_registry([(DirectoryTree(tmp_path), "")])
    assert [str(p) for p in problems] == [
        "mon/1.0.0/pack.yaml:2: pack version must match its folder '1.0.0'"
    ]


def test_preset_file_errors_have_lines(tmp_path: Path) -> None:
    write_pack(tmp_path, "mon", "1.0.0", presets="presets:\n  - name: a\n    grup: x\n")
    _, problems = load_registry([(DirectoryTree(tmp_path), "")])
    assert [str(p) for p in problems] == [
        "mon/1.0.0/presets.yaml:2: missing required field 'presets[0].group'",
        "mon/1.0.0/presets.yaml:3: unknown field 'presets[0].grup'",
    ]
