"""What a node reads is part of the node: a change to a site's proxies or CA certificates, a
pool's workerCapable or a profile's tags is a node change that ``plan`` shows (the field
``setup``): the node restarts on its data volume, and the rollout treats that as disruptive; a
cluster's own tags change no node."""

from __future__ import annotations

import pytest

from reconciler.cli.common import builtin_packs
from reconciler.planning import Plan, make_plan
from reconciler.sources import GitRepository
from tests.support.fleet import FleetFiles
from tests.support.git import git

STORE_SITE = "sites/store-1/site.yaml"
STORE = "sites/store-1/clusters/pos.yaml"


def commit(fleet: FleetFiles, message: str) -> None:
    git(fleet.root, "add", "-A")
    git(fleet.root, "commit", "-qm", message)


def plan(fleet: FleetFiles) -> Plan:
    return make_plan(GitRepository(fleet.root), "HEAD~1", "HEAD", builtin=builtin_packs())


CHANGES = [
    (
        "site-proxy",
        lambda f: f.edit(
            STORE_SITE,
            "    cidrs: [192.168.1.0/24]\n",
            "    cidrs: [192.168.1.0/24]\n    httpsProxy: http://proxy.store.test:3128\n",
        ),
    ),
    (
        "pool-not-worker-capable",
        lambda f: f.edit(STORE, "workerCapable: true", "workerCapable: false"),
    ),
    (
        "profile-tag",
        lambda f: f.edit(
            "profiles/store-1.0.0.yaml",
            "  version: 1.0.0\n",
            "  version: 1.0.0\n  tags:\n    tier: b\n",
        ),
    ),
]


@pytest.mark.parametrize("change", [c[1] for c in CHANGES], ids=[c[0] for c in CHANGES])
def test_a_change_of_what_the_node_reads_restarts_it_in_the_plan(
    fleet_repo: FleetFiles, change
) -> None:  # type: ignore[no-untyped-def]
    change(fleet_repo)
    commit(fleet_repo, "a node setup change")
    p = plan(fleet_repo)
    site = next(s for s in p.sites if s.name == "store-1")
    (cluster,) = site.clusters
    (node,) = cluster.nodes
    assert (node.node, node.kind, node.loses_data) == ("pos-main-1", "restarted", False)
    assert "setup" in node.fields
    assert all(a.disruptive for a in site.appliances)


def test_a_clusters_own_tags_change_no_node(fleet_repo: FleetFiles) -> None:
    fleet_repo.edit(STORE, "  name: pos\n", "  name: pos\n  tags:\n    team: tills\n")
    commit(fleet_repo, "a cluster tag")
    p = plan(fleet_repo)
    assert not [n for s in p.sites for c in s.clusters for n in c.nodes]
    assert not any(a.disruptive for s in p.sites for a in s.appliances)
