"""Plan at fleet scale: a synthetic fleet of 1,000 sites (bench/synthetic.py) in a real git
repository, changed through its profiles. The markdown must fit a pull-request comment
however large the change, identical changes are shown once, the exit codes tell CI whether
anything changes, and a broken base still gets a plan."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pygit2
import pytest

from bench.synthetic import commit, create, fleet_files
from reconciler.cli import main

SITES = 1000
STORE_PROFILE = "profiles/store-full-1.2.0.yaml"
LIMIT = 60_000
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """main~3: the fleet; main~2: a profile change, the same for every store;
    main~1: a fleet.yaml that does not validate; main: it fixed, and a profile change that
    differs at every store (their store number in a new manifest)."""
    path = tmp_path_factory.mktemp("fleet") / "fleet.git"
    repo = create(path, SITES)
    files = fleet_files(SITES)
    files[STORE_PROFILE] = files[STORE_PROFILE].replace(
        "etcd-snapshot-retention: 4", "etcd-snapshot-retention: 6"
    )
    commit(repo, files, "stores keep more etcd snapshots")
    broken = dict(files)
    broken["fleet.yaml"] = files["fleet.yaml"].replace("maxFailures: 5%", "maxFailures: five")
    commit(repo, broken, "a typo in fleet.yaml")
    files[STORE_PROFILE] = files[STORE_PROFILE].replace(
        "        - name: default-limits.yaml\n",
        "        - name: store-number.yaml\n"
        "          content: |-\n"
        "            apiVersion: v1\n"
        "            kind: ConfigMap\n"
        "            metadata:\n"
        "              name: store-number\n"
        "            data:\n"
        '              number: "{{ vars.storeNumber }}"\n'
        "        - name: default-limits.yaml\n",
    )
    commit(repo, files, "fix fleet.yaml; every store publishes its number")
    return path


def plan(fleet: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["plan", str(fleet), *args])
    return code, capsys.readouterr().out


def test_a_profile_change_across_1000_sites_is_one_change_that_fits_a_comment(
    fleet: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "plan.json"
    code, markdown = plan(
        fleet, capsys, "--base", "main~3", "--head", "main~2", "--format", "markdown",
        "--detailed-exitcode", "--out", str(out),
    )  # fmt: skip
    assert code == 3
    assert len(markdown) < LIMIT
    assert markdown.startswith("### edgefleet plan\n\n**950 of 1000 sites change; 950 clusters")
    # the summary: every wave in rollout order, with what changes in it
    assert "| 1. canary | 10 | 10 | 0 | 10 | 0 |" in markdown
    assert "| 2. everyone | 940 | 940 | 0 | 940 | 0 |" in markdown
    # one change, listed once with the count and the names of its sites
    assert markdown.count("<details>") == 1
    assert "<summary>1. 950 sites (<code>site-00000</code>" in markdown
    assert "`site-00999`" in markdown
    # the whole plan as the CI artifact: every site's change, grouped by name
    document = json.loads(out.read_text())
    assert len(document["sites"]) == 950
    (group,) = document["groups"]
    assert len(group["sites"]) == 950 and group["shownFor"] == "site-00000"


def test_a_change_that_differs_at_every_site_is_shortened_to_fit(
    fleet: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    whole = tmp_path / "plan.md"
    code, markdown = plan(
        fleet, capsys, "--base", "main~2", "--head", "main", "--format", "markdown",
        "--out", str(whole),
    )  # fmt: skip
    assert code == 0
    assert len(markdown) < LIMIT
    assert markdown.startswith("### edgefleet plan\n")
    assert "| 2. everyone | 940 |" in markdown  # the summary is always whole
    assert "**950 distinct changes**" in markdown
    assert re.search(r"…and [\d,]+ more changes at [\d,]+ sites, not shown here", markdown)
    assert "The whole plan is written by `edgefleet plan ... --out plan.md`" in markdown
    # the artifact holds every change with its diff
    text = whole.read_text()
    assert len(text) > LIMIT
    assert text.count("<details>") == 950
    assert '+  number: "0999"' in text


def test_exit_codes_tell_whether_anything_changes(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = plan(fleet, capsys, "--base", "main", "--head", "main", "--detailed-exitcode")
    assert code == 0
    assert "0 of 1000 sites change" in out
    code, _ = plan(fleet, capsys, "--base", "main", "--head", "main")
    assert code == 0
    with pytest.raises(SystemExit) as usage:
        main(["plan", str(fleet), "--base", "main", "--detailed-exitcode"])
    assert usage.value.code == 2
    capsys.readouterr()
    code, _ = plan(fleet, capsys, "--base", "main", "--head", "main~1", "--detailed-exitcode")
    assert code == 1  # the head does not validate


def test_a_broken_base_is_planned_against_its_nearest_valid_ancestor(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = pygit2.Repository(str(fleet))
    broken = str(repo.revparse_single("main~1").id)
    ancestor = str(repo.revparse_single("main~2").id)
    code, markdown = plan(
        fleet, capsys, "--base", "main~1", "--head", "main", "--format", "markdown",
        "--detailed-exitcode",
    )  # fmt: skip
    assert code == 3
    assert f"(`{ancestor[:12]}` → " in markdown
    assert (
        f"> **Note:** the base {broken[:12]} does not validate (1 problem: fleet.yaml:" in markdown
    )
    assert f"this plan compares with {ancestor[:12]}, its nearest ancestor that validates" in (
        markdown
    )
    assert len(markdown) < LIMIT
