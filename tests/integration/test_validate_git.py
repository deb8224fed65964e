"""``edgefleet validate --rev`` reads commits straight from git, with no checkout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pygit2

from reconciler.cli import main
from tests.support.fleet import FleetFiles
from tests.support.git import git

CLUSTER = "sites/hospital-1/clusters/imaging.yaml"


def validate(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout + done.stderr


def test_each_revision_is_validated_as_committed(fleet_repo: FleetFiles) -> None:
    fleet_repo.edit(CLUSTER, "size: 3", "size: 2")
    git(fleet_repo.root, "commit", "-qam", "shrink the control plane")
    line = fleet_repo.line_of(CLUSTER, "size: 2")
    # the work tree is fixed again, but the commit stays broken
    fleet_repo.edit(CLUSTER, "size: 2", "size: 5")

    code, out = validate(str(fleet_repo.root), "--rev", "HEAD~1")
    assert (code, out.strip()) == (0, "valid (3 sites, 5 appliances, 3 clusters)")

    code, out = validate(str(fleet_repo.root), "--rev", "main")
    assert code == 1
    assert out.splitlines()[0] == (
        f"{CLUSTER}:{line}: control-plane pool size must be 1, 3 or 5 (got 2)"
    )

    code, out = validate(str(fleet_repo.root))
    assert code == 0, out


def test_commit_made_with_pygit2_on_a_bare_repository(fleet: FleetFiles, tmp_path: Path) -> None:
    bare = pygit2.init_repository(str(tmp_path / "bare.git"), bare=True)

    def write_tree(folder: Path) -> pygit2.Oid:
        tb = bare.TreeBuilder()
        for child in sorted(folder.iterdir()):
            if child.is_dir():
                tb.insert(child.name, write_tree(child), pygit2.enums.FileMode.TREE)
            else:
                blob = bare.create_blob(child.read_bytes())
                tb.insert(child.name, blob, pygit2.enums.FileMode.BLOB)
        return tb.write()

    signature = pygit2.Signature("Test", "test@example.test")
    tree = write_tree(fleet.root)
    bare.create_commit("refs/heads/main", signature, signature, "fleet", tree, [])
    code, out = validate(str(tmp_path / "bare.git"), "--rev", "main", "--format", "json")
    assert code == 0, out
    assert json.loads(out) == {"valid": True, "errors": [], "warnings": []}


def test_unknown_revision_is_a_usage_error(fleet_repo: FleetFiles, capsys) -> None:
    assert main(["validate", str(fleet_repo.root), "--rev", "no-such-branch"]) == 2
    assert capsys.readouterr().err.strip() == "edgefleet: revision 'no-such-branch' not found"


def test_missing_repository_is_a_usage_error(tmp_path, capsys) -> None:
    assert main(["validate", str(tmp_path / "nope")]) == 2
    assert "no such repository" in capsys.readouterr().err
