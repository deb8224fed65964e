"""What plan says about how the rollout will take a change: the waves, the maintenance
windows that hold node replacements, the warnings; Helm values as YAML; the base that
does not validate."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.cli import main
from reconciler.cli.common import builtin_packs
from reconciler.cli.plan_markdown import as_markdown
from reconciler.planning import Plan, make_plan
from reconciler.sources import GitRepository
from tests.integration.conftest import git
from tests.support.fleet import FleetFiles

HOSPITAL_PROFILE = "profiles/hospital-1.0.0.yaml"
WEDNESDAY_NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SATURDAY_3AM_CHICAGO = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def commit(fleet: FleetFiles, message: str) -> None:
    git(fleet.root, "add", "-A")
    git(fleet.root, "commit", "-qm", message)


def plan(fleet: FleetFiles, *, at: datetime = WEDNESDAY_NOON, base: str = "HEAD~1") -> Plan:
    return make_plan(GitRepository(fleet.root), base, "HEAD", builtin=builtin_packs(), at=at)


def test_helm_values_diff_as_yaml(fleet_repo: FleetFiles) -> None:
    fleet_repo.edit("profiles/extras-1.0.0.yaml", "replicas: 2", "replicas: 3")
    commit(fleet_repo, "pos backend: three replicas")
    p = plan(fleet_repo)
    diff = p.sites[0].diff
    assert "   valuesContent: |\n-    replicas: 2\n+    replicas: 3\n" in diff
    assert "\\n" not in diff


def test_a_change_that_leaves_out_the_canary_wave_is_a_warning(fleet_repo: FleetFiles) -> None:
    fleet_repo.edit("sites/restaurant-7/clusters/pos.yaml", "30 2 * * *", "45 2 * * *")
    commit(fleet_repo, "restaurant-7: backups later")
    p = plan(fleet_repo)
    assert [(w.name, w.sites) for w in p.outlook.waves] == [
        ("canary", ()),
        ("everyone", ("restaurant-7",)),
    ]
    (warning,) = p.outlook.warnings
    assert warning.startswith("this change skips the canary wave: none of its sites change")


def test_node_replacements_wait_for_the_next_window(fleet_repo: FleetFiles) -> None:
    fleet_repo.edit(HOSPITAL_PROFILE, "version: 22.04.5", "version: 24.04.1")
    commit(fleet_repo, "hospital: ubuntu 24.04")
    (hold,) = plan(fleet_repo).outlook.held
    assert (hold.site, hold.wave, hold.timezone) == ("hospital-1", "everyone", "America/Chicago")
    assert hold.opens == datetime(2026, 11, 28, 8, 0, tzinfo=UTC)  # Sat 02:00 in Chicago
    assert hold.windows == "sat, sun 02:00 for 4h"
    (hold,) = plan(fleet_repo, at=SATURDAY_3AM_CHICAGO).outlook.held
    assert hold.opens is None  # open now
    markdown = as_markdown(plan(fleet_repo))
    assert "| `hospital-1` | everyone | Sat 2026-11-28 02:00 America/Chicago |" in markdown


def test_deleting_a_cluster_is_a_warning(fleet_repo: FleetFiles) -> None:
    fleet_repo.remove("sites/restaurant-7/clusters/pos.yaml")
    commit(fleet_repo, "restaurant-7 closes")
    p = plan(fleet_repo)
    assert "deletes a cluster: pos at restaurant-7" in p.outlook.warnings
    assert p.outlook.unheld == ("restaurant-7",)  # no maintenance window: goes at once


def test_markdown_is_shortened_to_the_limit(fleet_repo: FleetFiles) -> None:
    fleet_repo.edit(HOSPITAL_PROFILE, "version: 22.04.5", "version: 24.04.1")
    fleet_repo.edit("profiles/store-1.0.0.yaml", 'storeId: "{{ vars.storeId }}"', "x: y")
    commit(fleet_repo, "two changes")
    p = plan(fleet_repo)
    whole = as_markdown(p, limit=None)
    short = as_markdown(p, limit=2000)
    assert len(whole) > 2000 >= len(short)
    assert short.startswith(whole[: whole.index("<details>")])  # the summary stays whole
    assert "Shortened to fit a comment" in short


def test_plan_against_a_broken_base_says_so(fleet_repo: FleetFiles, capsys) -> None:
    f = fleet_repo
    f.edit("sites/store-1/clusters/pos.yaml", "size: 1", "size: 2")
    commit(f, "main breaks")
    f.edit("sites/store-1/clusters/pos.yaml", "size: 2", "size: 1")
    f.edit("sites/store-1/clusters/pos.yaml", "30 2 * * *", "45 2 * * *")
    commit(f, "fix main, backups later")
    args = ["plan", str(f.root), "--base", "HEAD~1", "--head", "HEAD", "--detailed-exitcode"]
    assert main(args) == 3
    out = capsys.readouterr().out
    assert "note: the base" in out and "does not validate (1 problem: sites/store-1/" in out
    assert "its nearest ancestor that validates (1 commit back)" in out
    assert "1 of 3 sites change" in out


def test_a_base_without_a_valid_ancestor_is_an_error(fleet_repo: FleetFiles, capsys) -> None:
    f = fleet_repo
    f.edit("fleet.yaml", "maxFailures: 10%", "maxFailures: ten")
    git(f.root, "add", "-A")
    git(f.root, "commit", "-q", "--amend", "-m", "a broken first commit")
    f.edit("fleet.yaml", "maxFailures: ten", "maxFailures: 10%")
    commit(f, "fixed")
    assert main(["plan", str(f.root), "--base", "HEAD~1", "--head", "HEAD"]) == 1
    out = capsys.readouterr().out
    assert "does not validate, nor do its 20 nearest ancestors" in out
    assert "maxFailures 'ten' must be a count or a percentage" in out


@pytest.mark.parametrize("suffix", [".json", ".md"])
def test_out_writes_the_whole_plan(fleet_repo: FleetFiles, capsys, tmp_path, suffix) -> None:
    fleet_repo.edit("profiles/extras-1.0.0.yaml", "replicas: 2", "replicas: 3")
    commit(fleet_repo, "pos backend: three replicas")
    out = tmp_path / f"plan{suffix}"
    args = ["plan", str(fleet_repo.root), "--base", "HEAD~1", "--head", "HEAD"]
    assert main([*args, "--out", str(out), "--format", "text"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("plan ")
    written = out.read_text()
    assert ('"summary": "2 of 3 sites change' if suffix == ".json" else "### edgefleet plan") in (
        written
    )
