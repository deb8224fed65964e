"""A repository history, step by step: plan names exactly the sites and nodes that change."""

from __future__ import annotations

import json
import shutil

from reconciler.cli import main
from reconciler.cli.common import builtin_packs
from reconciler.packs import BUILTIN_FOLDER, BUILTIN_ROOT
from reconciler.planning import Plan, make_plan
from reconciler.rendering import render_repository
from reconciler.sources import GitRepository
from reconciler.validation import check_repository
from tests.support.fleet import FleetFiles
from tests.support.git import git

STORE_SITES = ["restaurant-7", "store-1"]


def commit(fleet: FleetFiles, message: str) -> None:
    git(fleet.root, "add", "-A")
    git(fleet.root, "commit", "-qm", message)


def plan(fleet: FleetFiles, base: str = "HEAD~1", head: str = "HEAD") -> Plan:
    return make_plan(GitRepository(fleet.root), base, head, builtin=builtin_packs())


def nodes(p: Plan, kind: str) -> list[str]:
    return sorted(n.node for s in p.sites for c in s.clusters for n in c.nodes if n.kind == kind)


def rendered(fleet: FleetFiles, rev: str) -> dict[str, dict[str, str]]:
    tree = GitRepository(fleet.root).tree(rev)
    checked = check_repository(tree, builtin=builtin_packs())
    states = render_repository(checked.repo, checked.registry, revision=tree.commit)
    return {
        site: {a: s.model_dump_json(exclude={"revision"}) for a, s in apps.items()}
        for site, apps in states.items()
    }


def test_history(fleet_repo: FleetFiles) -> None:
    f = fleet_repo
    # 1. one site's values change: only that site, no node replaced (a manifest value)
    f.edit(
        "sites/restaurant-7/clusters/pos.yaml",
        "    k3s:\n",
        "    monitoring:\n      presets: [long]\n    k3s:\n",
    )
    commit(f, "restaurant-7: keep metrics longer")
    p = plan(f)
    assert [s.name for s in p.sites] == ["restaurant-7"]
    assert p.rendered_sites == 1
    assert nodes(p, "replaced") == []
    (cluster,) = p.sites[0].clusters
    assert cluster.manifests and all(m.startswith("monitoring/") for m in cluster.manifests)
    assert p.summary == "1 of 3 sites change"

    # 2. a profile used by two sites changes: both store sites restart their node (k3s
    #    applies a new kubelet flag by restart), on its data
    f.edit("profiles/store-1.0.0.yaml", "presets: [small]", "presets: [large]")
    commit(f, "stores: large k3s preset")
    p = plan(f)
    assert [s.name for s in p.sites] == STORE_SITES
    assert nodes(p, "restarted") == ["pos-main-1", "pos-main-1"]
    assert nodes(p, "replaced") == []
    assert p.summary == "2 of 3 sites change; 2 clusters restart nodes (keeping their data)"
    (cluster,) = p.sites[0].clusters
    assert not cluster.loses_data
    assert cluster.order == (
        "stop pos-main-1, start it again with the new spec on its data",
    )

    # 3. a new pack version appears that the stores' train (k3s 1.30.x) picks up;
    #    the hospital pins k3s 1.30.6 and does not change
    shutil.copytree(BUILTIN_ROOT / BUILTIN_FOLDER / "k3s" / "1.30.6", f.root / "packs/k3s/1.30.9")
    pack_yaml = f.root / "packs/k3s/1.30.9/pack.yaml"
    pack_yaml.write_text(pack_yaml.read_text().replace("1.30.6", "1.30.9"))
    commit(f, "k3s 1.30.9")
    p = plan(f)
    assert [s.name for s in p.sites] == STORE_SITES
    assert {pk for s in p.sites for c in s.clusters for pk in c.packs} == {"k3s 1.30.6 → 1.30.9"}

    # 4. a cluster is deleted: its nodes go
    before_delete = rendered(f, "HEAD")
    f.remove("sites/restaurant-7/clusters/pos.yaml")
    commit(f, "restaurant-7 closes its POS cluster")
    p = plan(f)
    assert [s.name for s in p.sites] == ["restaurant-7"]
    (cluster,) = p.sites[0].clusters
    assert cluster.kind == "removed"
    assert nodes(p, "removed") == ["pos-main-1"]
    assert p.summary == "1 of 3 sites change; 1 cluster is deleted"

    # 5. git revert brings back exactly what was there before
    git(f.root, "revert", "--no-edit", "HEAD")
    p = plan(f)
    assert [s.name for s in p.sites] == ["restaurant-7"]
    assert p.sites[0].clusters[0].kind == "added"
    assert rendered(f, "HEAD") == before_delete

    # the whole way from the start: every site changed at some point
    p = plan(f, "HEAD~5", "HEAD")
    assert [s.name for s in p.sites] == STORE_SITES


def test_untouched_sites_are_not_rendered(fleet_repo: FleetFiles) -> None:
    f = fleet_repo
    f.edit("sites/hospital-1/site.yaml", 'start: "02:00"', 'start: "03:00"')
    commit(f, "hospital window moves")
    p = plan(f)
    assert p.rendered_sites == 1
    assert [s.name for s in p.sites] == ["hospital-1"]


def test_plan_cli_formats(fleet_repo: FleetFiles, capsys) -> None:
    f = fleet_repo
    f.edit("sites/store-1/clusters/pos.yaml", "location: nas", "location: s3-main")
    commit(f, "store-1 backs up to S3")
    assert main(["plan", str(f.root), "--base", "HEAD~1", "--head", "HEAD"]) == 0
    text = capsys.readouterr().out
    assert "1 of 3 sites change" in text
    assert "schedule backup: parameters changed" in text
    assert (
        main(["plan", str(f.root), "--base", "HEAD~1", "--head", "HEAD", "--format", "json"]) == 0
    )
    document = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in document["sites"]] == ["store-1"]
    assert (
        main(["plan", str(f.root), "--base", "HEAD~1", "--head", "HEAD", "--format", "markdown"])
        == 0
    )
    markdown = capsys.readouterr().out
    assert markdown.startswith("### edgefleet plan\n")
    summary = "<summary>1. 1 site (<code>store-1</code>): changed — cluster pos changed</summary>"
    assert summary in markdown


def test_plan_of_a_broken_head_fails_with_the_errors(fleet_repo: FleetFiles, capsys) -> None:
    f = fleet_repo
    f.edit("sites/store-1/clusters/pos.yaml", "size: 1", "size: 2")
    commit(f, "broken")
    assert main(["plan", str(f.root), "--base", "HEAD~1", "--head", "HEAD"]) == 1
    assert "control-plane pool size must be 1, 3 or 5 (got 2)" in capsys.readouterr().out


def test_unknown_revision_is_a_usage_error(fleet_repo: FleetFiles, capsys) -> None:
    assert main(["plan", str(fleet_repo.root), "--base", "nope", "--head", "HEAD"]) == 2
    assert "revision 'nope' not found" in capsys.readouterr().err


def test_sensitive_variable_values_are_masked_in_the_plan(fleet_repo: FleetFiles) -> None:
    f = fleet_repo
    f.edit(
        "profiles/store-1.0.0.yaml",
        "    - name: replicas\n",
        "    - name: enrollToken\n      format: string\n      sensitive: true\n"
        "      default: enr-0000\n    - name: replicas\n",
    )
    line = next(x for x in f.read("profiles/store-1.0.0.yaml").splitlines() if "vars.storeId" in x)
    indent = line[: len(line) - len(line.lstrip())]
    f.edit(
        "profiles/store-1.0.0.yaml", line, f'{line}\n{indent}token: "{{{{ vars.enrollToken }}}}"'
    )
    commit(f, "stores get an enrollment token")
    f.edit(
        "sites/store-1/clusters/pos.yaml",
        'storeId: "0001"',
        'storeId: "0001"\n        enrollToken: enr-7f3c9a',
    )
    commit(f, "store-1 token")
    p = plan(f)
    (site,) = p.sites
    assert '-  token: "***"\n+  token: "***"' in site.diff
    assert "enr-7f3c9a" not in site.diff
