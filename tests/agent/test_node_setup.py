"""A containerized node reads the cluster's configuration as a virtual node of the cluster does:
the test fleet's store cluster (behind a proxy, with a site CA, a registry mirror, its own
pod and service CIDRs, a control plane that takes no workloads and a profile tag) is
rendered by the reconciler, applied by the agent on the real Docker engine, and each node
container's files and environment are compared with the cloud-init user data the ubuntu pack
renders for the same node."""

from __future__ import annotations

import shlex
import textwrap
from typing import Any

import pytest
from ruamel.yaml import YAML

from agent.contract import ClusterState, Node
from reconciler.cli.common import builtin_packs
from reconciler.rendering import render_repository
from reconciler.sources import DirectoryTree
from reconciler.validation import check_repository
from tests.support.appliances import TestAgent
from tests.support.fleet import CA_PEM, FleetFiles
from tests.support.states import state

SITE = "sites/store-1/site.yaml"
POS = "sites/store-1/clusters/pos.yaml"
PROXY = "http://proxy.store.test:3128"
MIRROR = "https://mirror.store.test:5000"


def yaml_of(text: str) -> Any:
    return YAML(typ="safe").load(text)


def store_behind_a_proxy(f: FleetFiles) -> None:
    f.edit(
        SITE,
        "    cidrs: [192.168.1.0/24]\n",
        f"    cidrs: [192.168.1.0/24]\n    httpProxy: {PROXY}\n    httpsProxy: {PROXY}\n"
        "    noProxy: .store.test\n  caCerts:\n    - |\n" + textwrap.indent(CA_PEM, " " * 6) + "\n",
    )
    f.edit(
        "profiles/store-1.0.0.yaml",
        "  version: 1.0.0\n",
        "  version: 1.0.0\n  tags:\n    vertical: grocery\n",
    )
    f.edit(POS, "  name: pos\n", "  name: pos\n  tags:\n    team: pos-squad\n")
    f.edit(
        POS,
        "        maxPods: 80\n",
        "        maxPods: 80\n        registries:\n          mirrors:\n            docker.io:\n"
        f"              endpoint: [\"{MIRROR}\"]\n",
    )
    f.edit(
        POS,
        "  nodePools:\n",
        "  config:\n    podCIDR: 10.60.0.0/16\n    serviceCIDR: 10.61.0.0/16\n  nodePools:\n",
    )
    f.edit(POS, "workerCapable: true", "workerCapable: false")
    f.edit(
        POS,
        "      appliances: [store-1-a]\n",
        "      appliances: [store-1-a]\n    - name: workers\n      size: 1\n"
        "      appliances: [store-1-a]\n",
    )


@pytest.fixture
def rendered(fleet: FleetFiles) -> ClusterState:
    store_behind_a_proxy(fleet)
    checked = check_repository(DirectoryTree(fleet.root), builtin=builtin_packs())
    assert not checked.diagnostics, [str(d) for d in checked.diagnostics]
    states = render_repository(checked.repo, checked.registry, revision="a" * 40)
    (cluster,) = [c for c in states["store-1"]["store-1-a"].clusters if c.name == "pos"]
    return cluster


def on_agent(agent: TestAgent, cluster: ClusterState) -> tuple[ClusterState, dict[str, Node]]:
    """The rendered cluster under the test's own names, on the stand-in node image; returns
    it and the rendered node of each of its node names."""
    name = agent.name("pos")
    renamed: dict[str, Node] = {}
    nodes = []
    for node in cluster.nodes:
        new = node.name.replace("pos-", f"{name}-", 1)
        renamed[new] = node
        nodes.append(node.model_copy(update={"name": new, "appliance": agent.appliance,
                                             "image": None}))  # fmt: skip
    return cluster.model_copy(update={"name": name, "nodes": nodes, "schedules": []}), renamed


def cloud_init_files(node: Node) -> dict[str, str]:
    """The files the os pack's user data writes on a virtual node, by path."""
    data = yaml_of(node.userData)
    return {f["path"]: f["content"] for f in data["write_files"] if "content" in f}


def environment(agent: TestAgent, node: str) -> dict[str, str]:
    container = agent.node_container(node)
    container.reload()
    pairs = (item.split("=", 1) for item in container.attrs["Config"]["Env"])
    return {k: v for k, v in pairs}


def test_containerized_nodes_read_what_the_pack_gives_a_virtual_node(
    agent: TestAgent, rendered: ClusterState
) -> None:
    cluster, renamed = on_agent(agent, rendered)
    assert agent.apply(state(agent.appliance, cluster)).ok

    roles = {}
    for node_name, source in renamed.items():
        container = agent.node_container(node_name)
        vm = cloud_init_files(source)
        roles[source.role] = node_name

        # k3s' configuration: the same file, byte for byte, private
        config = agent.read(container, "/etc/rancher/k3s/config.yaml")
        assert config == vm["/etc/rancher/k3s/config.yaml"]
        listing = container.exec_run(["ls", "-l", "/etc/rancher/k3s/config.yaml"]).output
        assert listing.decode().startswith("-rw-------")
        settings = yaml_of(config)
        assert settings["node-name"] == source.name
        assert settings["kubelet-arg"][0] == "max-pods=60"  # the store profile's small preset
        assert "edgefleet.dev/vertical=grocery" in settings["node-label"]  # the profile's tag
        assert not any("team" in label for label in settings["node-label"])  # not the cluster's
        if source.role == "control-plane":
            assert settings["cluster-cidr"] == "10.60.0.0/16"
            assert settings["service-cidr"] == "10.61.0.0/16"
            assert settings["cluster-dns"] == "10.61.0.10"
            assert settings["disable"] == ["local-storage"]
            assert settings["node-taint"] == ["node-role.kubernetes.io/control-plane:NoSchedule"]
        else:
            assert "cluster-cidr" not in settings and "node-taint" not in settings

        # the registry mirror
        registries = agent.read(container, "/etc/rancher/k3s/registries.yaml")
        assert registries == vm["/etc/rancher/k3s/registries.yaml"]
        assert yaml_of(registries)["mirrors"]["docker.io"]["endpoint"] == [MIRROR]

        # the site's CA in the trust store Go (k3s, its containerd) reads
        ca = agent.read(container, "/etc/ssl/certs/edgefleet-0.pem")
        assert ca == vm["/usr/local/share/ca-certificates/edgefleet-0.crt"]
        assert ca.strip() == CA_PEM.strip()

        # the proxies, for k3s and for its containerd, with the cluster's networks exempt
        env = environment(agent, node_name)
        proxy_env = dict(
            shlex.split(line)[0].split("=", 1)
            for line in vm["/etc/edgefleet/proxy.env"].splitlines()
            if line.strip()
        )
        for name, value in proxy_env.items():
            assert env[name] == value, name
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "CONTAINERD_HTTP_PROXY",
                     "CONTAINERD_HTTPS_PROXY"):  # fmt: skip
            assert env[name] == PROXY
        exempt = env["NO_PROXY"].split(",")
        assert env["CONTAINERD_NO_PROXY"] == env["NO_PROXY"] == env["no_proxy"]
        for entry in ("10.60.0.0/16", "10.61.0.0/16", ".cluster.local", ".store.test",
                      "192.168.1.0/24"):  # fmt: skip
            assert entry in exempt

        # the profile's tags as the container's labels; the cluster's stay with the cluster
        labels = container.labels
        assert labels["edgefleet.dev/vertical"] == "grocery"
        assert "edgefleet.dev/team" not in labels
    assert set(roles) == {"control-plane", "worker"}


def test_a_changed_proxy_replaces_the_nodes(agent: TestAgent, rendered: ClusterState) -> None:
    """The node setup is part of the node's spec: a change to it is a node change."""
    cluster, _ = on_agent(agent, rendered)
    assert agent.apply(state(agent.appliance, cluster)).ok
    before = set(agent.container_names(cluster.name))
    changed = [
        n.model_copy(
            update={
                "setup": n.setup.model_copy(
                    update={"environment": {**n.setup.environment, "HTTP_PROXY": "http://p2:3128"}}
                )
            }
        )
        for n in cluster.nodes
    ]
    assert agent.apply(state(agent.appliance, cluster.model_copy(update={"nodes": changed}))).ok
    after = set(agent.container_names(cluster.name))
    assert before.isdisjoint(after) and len(after) == len(before)
    worker = next(n.name for n in changed if n.role == "worker")
    assert environment(agent, worker)["HTTP_PROXY"] == "http://p2:3128"
