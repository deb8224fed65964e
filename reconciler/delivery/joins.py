"""Each join of a cluster spanning appliances, as one member appliance is served it: the
cluster's token (a secret the store made for it, never in Git, a rendered state or a log),
the URL of an existing server its nodes join, and whether the cluster's first server starts
the cluster.

The server is the VIP where the cluster has one (kube-vip holds it on the control plane),
else the address the first server's appliance registered with. Once the cluster has formed
(a member reported it Running), the first server's own appliance is pointed at another
server instead, so a first server made anew (a lost volume, a new root disk) joins the
running cluster rather than start a second one. The join is added to the state when it is
served, outside its digest: the rollout and its proofs judge what Git asked for. A cluster
on one appliance gets none: its agent makes its token from its own secret, and its nodes
reach each other on the cluster's own network.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from typing import Any

from agent.contract import ClusterJoin

from ..store import Assignment, ChangeRecord, Transaction

Content = Mapping[str, Any]  # a document's content (the state without revision and digest)


def joins_for(
    tx: Transaction, served: Sequence[tuple[Assignment, Content]]
) -> dict[str, list[ClusterJoin]]:
    """The join section of each appliance's state, by appliance; read in a few queries."""
    keys = {
        (assignment.site, str(cluster["name"]))
        for assignment, content in served
        for cluster in content.get("clusters", [])
    }
    if not keys:
        return {}
    records = tx.joins.get_many(keys)
    wanted = {
        server["appliance"]
        for _, content in served
        for cluster in content.get("clusters", [])
        for server in cluster.get("servers") or []
    } | {assignment.appliance for assignment, _ in served}
    addresses = {a: r.ip for a, r in tx.agents.get_many(wanted).items()}
    out: dict[str, list[ClusterJoin]] = {}
    for assignment, content in served:
        joins = []
        for cluster in content.get("clusters", []):
            if len(cluster.get("appliances") or []) < 2:
                continue  # on one appliance its agent makes the token (agent.apply.planning)
            record = records.get((assignment.site, str(cluster["name"])))
            if record is None or record.retired_at is not None:
                continue
            joins.append(
                _join(
                    assignment.appliance,
                    cluster,
                    secret=record.secret,
                    formed=record.formed_at is not None,
                    addresses=addresses,
                )
            )
        if joins:
            out[assignment.appliance] = sorted(joins, key=lambda j: j.cluster)
    return out


def _join(
    appliance: str,
    cluster: Content,
    *,
    secret: str,
    formed: bool,
    addresses: Mapping[str, str],
) -> ClusterJoin:
    servers = [(str(s["node"]), str(s["appliance"])) for s in cluster.get("servers") or []]
    if not servers:  # on this appliance alone: its control-plane nodes in index order
        here = [n for n in cluster.get("nodes", []) if n.get("role") == "control-plane"]
        servers = [(str(n["name"]), appliance) for n in sorted(here, key=_index)]
    vip = cluster.get("vip")

    def url(appliance_of: str) -> str | None:
        address = vip or addresses.get(appliance_of)
        return _url(str(address)) if address else None

    first = servers[0][1] if servers else None
    others = servers[1:]
    if first == appliance and formed and others:
        # a first server made anew joins a server that runs, not start a second cluster
        joined = [url(a) for _, a in others]
        return ClusterJoin(
            cluster=str(cluster["name"]),
            token=secret,
            server=next((u for u in joined if u), None),
            init=False,
        )
    return ClusterJoin(
        cluster=str(cluster["name"]),
        token=secret,
        server=url(first) if first else None,
        init=not formed or not others,
    )


def _url(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"https://{address}:6443"
    return f"https://[{ip}]:6443" if ip.version == 6 else f"https://{ip}:6443"


def _index(node: Mapping[str, Any]) -> tuple[int, str]:
    name = str(node.get("name", ""))
    tail = name.rsplit("-", 1)[-1]
    return (int(tail) if tail.isdigit() else 0, name)


def join_view(content: Content) -> dict[str, Any]:
    """What :func:`joins_for` reads of a state's content: each cluster's name, members,
    servers, VIP and nodes' names and roles (a small part of a state with manifests)."""
    return {
        "clusters": [
            {
                **{k: cluster[k] for k in ("name", "appliances", "servers", "vip") if k in cluster},
                "nodes": [
                    {"name": node.get("name"), "role": node.get("role")}
                    for node in cluster.get("nodes", [])
                ],
            }
            for cluster in content.get("clusters", [])
        ]
    }


def parse(content: str | bytes) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(content)
    return parsed


def joins_changed(tx: Transaction, site: str, *, at: float) -> list[ChangeRecord]:
    """The states served at ``site`` carry new joins (a cluster formed, an appliance's
    address changed): a change for each, logged so that caches drop and long-polls wake here
    and on every replica. Publish them once the transaction committed."""
    changes = [
        ChangeRecord(
            "served", a.appliance, at=at, digest=a.served_digest, revision=a.served_revision
        )
        for a in tx.assignments.for_site(site)
        if a.served_digest is not None
    ]
    tx.changes.add(changes)
    return changes
