"""The k3s configuration every node of the example fleet gets, checked against k3s' published
configuration reference (docs.k3s.io: config.yaml keys are the CLI flags without ``--``; the
server takes every agent flag; registries.yaml has ``mirrors`` and ``configs``), and the
cluster network's one source of truth on the example's grocery store: ``spec.config``
reaches the nodes and the CNI, a pack override of it is refused."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from agent.contract import DesiredState, Node
from reconciler.cli.common import builtin_packs
from reconciler.rendering import render_repository
from reconciler.sources import DirectoryTree
from reconciler.validation import check_repository

EXAMPLE = Path(__file__).resolve().parents[2] / "fleet-example"
GROCERY = "sites/grocery-0412/clusters/grocery-0412-store.yaml"

# docs.k3s.io/cli/agent: the flags of `k3s agent` (a config.yaml key each)
AGENT_FLAGS = frozenset(
    """token token-file server data-dir node-name with-node-id node-label node-taint
    image-credential-provider-bin-dir image-credential-provider-config selinux lb-server-port
    protect-kernel-defaults docker container-runtime-endpoint default-runtime
    disable-default-registry-endpoint
    pause-image snapshotter private-registry system-default-registry node-ip node-external-ip
    node-internal-dns node-external-dns resolv-conf flannel-iface flannel-conf
    flannel-cni-conf-dir kubelet-arg kube-proxy-arg rootless prefer-bundled-bin vpn-auth
    vpn-auth-file airgap-extra-registry debug v vmodule log alsologtostderr""".split()
)
# docs.k3s.io/cli/server: `k3s server` takes these besides every agent flag
SERVER_FLAGS = AGENT_FLAGS | frozenset(
    """write-kubeconfig write-kubeconfig-mode write-kubeconfig-group agent-token
    agent-token-file cluster-init cluster-reset cluster-reset-restore-path cluster-cidr
    service-cidr service-node-port-range cluster-dns cluster-domain flannel-backend
    flannel-ipv6-masq flannel-external-ip egress-selector-mode servicelb-namespace disable
    disable-scheduler disable-cloud-controller disable-kube-proxy disable-network-policy
    disable-helm-controller tls-san tls-san-security bind-address advertise-address
    advertise-port https-listen-port supervisor-port supervisor-metrics secrets-encryption
    etcd-expose-metrics etcd-disable-snapshots etcd-snapshot-name etcd-snapshot-schedule-cron
    etcd-snapshot-retention etcd-snapshot-dir etcd-snapshot-compress etcd-arg
    kube-apiserver-arg kube-scheduler-arg kube-controller-manager-arg
    kube-cloud-controller-manager-arg embedded-registry default-local-storage-path
    datastore-endpoint datastore-cafile datastore-certfile datastore-keyfile""".split()
)
# docs.k3s.io: the values every server of a cluster must share
CRITICAL = ("cluster-cidr", "service-cidr", "cluster-dns", "cluster-domain", "flannel-backend",
            "disable-network-policy", "secrets-encryption")  # fmt: skip
REGISTRY_KEYS = {"mirrors": {"endpoint", "rewrite"}, "configs": {"auth", "tls"}}


def yaml_of(text: str) -> Any:
    return YAML(typ="safe").load(text)


def render(root: Path) -> dict[str, dict[str, DesiredState]]:
    checked = check_repository(DirectoryTree(root), builtin=builtin_packs())
    assert not checked.diagnostics, [str(d) for d in checked.diagnostics]
    return render_repository(checked.repo, checked.registry, revision="b" * 40)


def node_file(node: Node, path: str) -> str | None:
    return next((f.content for f in node.setup.files if f.path == path), None)


def test_every_node_config_key_is_a_k3s_flag_of_its_role_and_servers_agree() -> None:
    states = render(EXAMPLE)
    seen = 0
    for site in states.values():
        for desired in site.values():
            for cluster in desired.clusters:
                critical: set[tuple[Any, ...]] = set()
                for node in cluster.nodes:
                    text = node_file(node, "/etc/rancher/k3s/config.yaml")
                    assert text is not None, node.name
                    config = yaml_of(text)
                    allowed = SERVER_FLAGS if node.role == "control-plane" else AGENT_FLAGS
                    assert set(config) <= allowed, (node.name, set(config) - allowed)
                    if node.role == "control-plane":
                        critical.add(tuple(repr(config.get(k)) for k in CRITICAL))
                        assert config["cluster-cidr"] == cluster.network.podCIDR
                    registries = node_file(node, "/etc/rancher/k3s/registries.yaml")
                    if registries is not None:
                        parsed = yaml_of(registries)
                        assert set(parsed) <= set(REGISTRY_KEYS)
                        for section, keys in REGISTRY_KEYS.items():
                            for entry in (parsed.get(section) or {}).values():
                                assert set(entry) <= keys
                    seen += 1
                assert len(critical) <= 1, (cluster.name, critical)
    assert seen >= 6


@pytest.fixture
def example(tmp_path: Path) -> Path:
    root = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, root)
    return root


def test_the_pod_cidr_of_spec_config_reaches_the_node_and_the_cni(example: Path) -> None:
    path = example / GROCERY
    text = path.read_text()
    path.write_text(text.replace("  config:\n", "  config:\n    podCIDR: 10.99.0.0/16\n", 1))
    states = render(example)
    (cluster,) = states["grocery-0412"]["grocery-0412-vm"].clusters
    (node,) = cluster.nodes
    config = yaml_of(node_file(node, "/etc/rancher/k3s/config.yaml") or "")
    assert config["cluster-cidr"] == "10.99.0.0/16"
    assert cluster.network.podCIDR == "10.99.0.0/16"
    cni = [m for m in cluster.manifests if m.layer == "cni"]
    assert cni and all("10.42.0.0/16" not in m.content for m in cni)
    assert any("10.99.0.0/16" in m.content for m in cni)


def test_a_pack_override_of_the_pod_cidr_is_refused_where_it_is_written(
    example: Path, run_cli
) -> None:
    """The issue's grocery store: a pod CIDR inside the store LAN, set as a pack value, used
    to validate and reach the node."""
    path = example / GROCERY
    text = path.read_text()
    path.write_text(
        text.replace(
            "  config:\n", "  packs:\n    k3s:\n      values:\n        podCIDR: 172.16.12.0/25\n"
            "  config:\n", 1,
        )
    )  # fmt: skip
    result = run_cli("validate", str(example))
    assert result.code == 1
    line = next(i for i, s in enumerate(path.read_text().splitlines(), 1) if "podCIDR" in s)
    assert (
        f"{GROCERY}:{line}: podCIDR is the cluster network: set it in the cluster's "
        "spec.config.podCIDR" in result.out
    )


def test_registries_of_another_shape_fail_the_render_at_their_line(
    example: Path, run_cli, tmp_path: Path
) -> None:
    hospital = example / "sites/hospital-1/clusters/hospital-1-clinical.yaml"
    text = hospital.read_text()
    listed = 'endpoint: ["https://registry.hospital-1.acme.internal:5000"]'
    assert listed in text
    hospital.write_text(text.replace(listed, 'endpoint: "https://registry.hospital-1.acme.internal"'))
    result = run_cli("render", str(example), "--out", str(tmp_path / "out"))
    assert result.code == 1
    line = next(
        i for i, s in enumerate(hospital.read_text().splitlines(), 1) if "registries:" in s
    )
    assert (
        f"sites/hospital-1/clusters/hospital-1-clinical.yaml:{line}: registries.mirrors."
        "docker.io: endpoint must be a list of http:// or https:// URLs" in result.out
    )
