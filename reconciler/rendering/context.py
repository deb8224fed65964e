"""What templates see of the site, the cluster and (in user data) the node, and nothing more.
Nothing that changes on every commit (the revision, timestamps) is here, so a site whose
inputs did not change renders to the same bytes.
"""

from __future__ import annotations

from typing import Any

from agent.contract import NodeSetup

from ..models import Cluster, Site
from ..validation import Mode


def site_context(name: str, site: Site | None) -> dict[str, Any]:
    if site is None:
        return {
            "name": name,
            "labels": {},
            "timezone": "UTC",
            "network": {},
            "caCerts": [],
            "variables": {},
        }
    spec = site.spec
    return {
        "name": name,
        "labels": dict(site.metadata.labels),
        "timezone": spec.timezone,
        "network": spec.network.model_dump(),
        "caCerts": list(spec.caCerts),
        "variables": dict(spec.variables),
    }


def cluster_context(cluster: Cluster, mode: Mode) -> dict[str, Any]:
    return {
        "name": cluster.metadata.name,
        "mode": mode,
        "tags": dict(cluster.metadata.tags),
        # the cluster network with its defaults filled in, as every node gets it
        "config": cluster.spec.config.model_dump() | cluster.spec.config.network(),
    }


def node_context(
    name: str, pool: str, role: str, appliance: str, setup: NodeSetup
) -> dict[str, Any]:
    """The node, and ``setup``: what it must read (its k3s files, CA certificates,
    environment and labels), for an os pack to write into its user data."""
    return {
        "name": name,
        "pool": pool,
        "role": role,
        "appliance": appliance,
        "setup": setup.model_dump(mode="json"),
    }
