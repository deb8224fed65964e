"""What each node reads, the same in both modes (:class:`agent.contract.NodeSetup`): its k3s
configuration from the k8s pack's values and the cluster network, the registries, the site's
CA certificates and proxies, and its profiles' tags as labels. Called by the cluster renderer;
the os pack writes the result into a virtual node's user data, the Docker driver into a
container. docs/node-images.md is the contract it fulfils."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML

from agent.contract import NodeFile, NodeSetup

from ..models import Site

K3S_CONFIG = "/etc/rancher/k3s/config.yaml"
K3S_REGISTRIES = "/etc/rancher/k3s/registries.yaml"
LABEL_PREFIX = "edgefleet.dev/"
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane:NoSchedule"
# config.yaml keys written from the cluster's own settings (or by the agent, for joining):
# a pack's serverConfig/agentConfig cannot set them
MANAGED = frozenset(
    {
        "node-name",
        "node-label",
        "node-taint",
        "kubelet-arg",
        "write-kubeconfig-mode",
        "cluster-cidr",
        "service-cidr",
        "cluster-dns",
        "cluster-domain",
        "flannel-backend",
        "disable-network-policy",
        "disable",
        "tls-san",
        "token",
        "token-file",
        "agent-token",
        "server",
        "cluster-init",
        "private-registry",
    }
)
_PLAIN_KEY = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class SetupProblem(ValueError):
    """A k8s pack value that cannot become a node's configuration; ``key`` names it."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


@dataclass(frozen=True)
class NodeFacts:
    name: str
    pool: str
    control_plane: bool
    worker_capable: bool  # the pool's own setting (a control plane that takes workloads)


def node_setup(
    node: NodeFacts,
    *,
    cluster: str,
    k8s: Mapping[str, Any],
    network: Mapping[str, str],
    site: Site | None,
    vip: str | None,
    tags: Mapping[str, str],
) -> NodeSetup:
    """The files, CA certificates, environment and labels of one node. Raises SetupProblem
    for a k8s value that cannot be written (registries of the wrong shape)."""
    labels = {f"{LABEL_PREFIX}{name}": value for name, value in sorted(tags.items())}
    config = _k3s_config(node, cluster, k8s, network, vip, labels)
    files = [NodeFile(path=K3S_CONFIG, mode="0600", content=config)]
    registries = _registries(k8s.get("registries"))
    if registries is not None:
        files.append(NodeFile(path=K3S_REGISTRIES, mode="0600", content=registries))
    spec = site.spec if site is not None else None
    return NodeSetup(
        files=files,
        caCerts=[cert.strip() + "\n" for cert in (spec.caCerts if spec else [])],
        environment=_proxies(site, network, vip),
        labels=labels,
    )


def _k3s_config(
    node: NodeFacts,
    cluster: str,
    k8s: Mapping[str, Any],
    network: Mapping[str, str],
    vip: str | None,
    labels: Mapping[str, str],
) -> str:
    config: dict[str, Any] = {
        "node-name": node.name,
        "node-label": [
            f"{LABEL_PREFIX}cluster={cluster}",
            f"{LABEL_PREFIX}pool={node.pool}",
            *(f"{key}={value}" for key, value in labels.items()),
        ],
    }
    if node.control_plane and not node.worker_capable:
        config["node-taint"] = [CONTROL_PLANE_TAINT]
    kubelet_args = _strings(k8s.get("kubeletArgs"), "kubeletArgs")
    if kubelet_args:
        config["kubelet-arg"] = kubelet_args
    if node.control_plane:
        flannel = str(k8s.get("flannelBackend") or "vxlan")
        config |= {
            "write-kubeconfig-mode": "0600",
            "cluster-cidr": network["podCIDR"],
            "service-cidr": network["serviceCIDR"],
            "cluster-dns": network["clusterDNS"],
            "cluster-domain": network["clusterDomain"],
            "flannel-backend": flannel,
        }
        if flannel == "none":
            config["disable-network-policy"] = True
        config["disable"] = _strings(k8s.get("disable"), "disable")
        if vip:
            config["tls-san"] = [vip]
    extra = k8s.get("serverConfig" if node.control_plane else "agentConfig") or {}
    if not isinstance(extra, Mapping):
        key = "serverConfig" if node.control_plane else "agentConfig"
        raise SetupProblem(key, f"{key} must be a mapping of k3s configuration keys")
    for key, value in sorted(extra.items(), key=lambda kv: str(kv[0])):
        if str(key) not in MANAGED:
            config[str(key)] = value
    return _yaml_lines(config)


def _strings(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise SetupProblem(key, f"{key} must be a list")
    return [str(item) for item in value]


def _yaml_lines(config: Mapping[str, Any]) -> str:
    """k3s' config.yaml: one key a line, every scalar as a JSON string (valid YAML, whatever
    the value holds), lists one item a line."""
    lines = ["# written by edgefleet: this node's k3s configuration (docs/node-images.md)"]
    for key, value in config.items():
        name = key if _PLAIN_KEY.fullmatch(key) else json.dumps(key)
        if isinstance(value, list) and value:
            lines.append(f"{name}:")
            lines += [f"  - {json.dumps(item)}" for item in value]
        else:
            lines.append(f"{name}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def _registries(value: Any) -> str | None:
    """registries.yaml in k3s' format, when the values name at least one mirror."""
    if value is None or value == {}:
        return None
    if not isinstance(value, Mapping):
        raise SetupProblem("registries", "registries must be a mapping (mirrors, configs)")
    unknown = sorted(str(k) for k in value if k not in ("mirrors", "configs"))
    if unknown:
        raise SetupProblem(
            "registries", f"registries takes mirrors and configs, not {', '.join(unknown)}"
        )
    mirrors = value.get("mirrors") or {}
    configs = value.get("configs") or {}
    if not isinstance(mirrors, Mapping) or not isinstance(configs, Mapping):
        raise SetupProblem("registries", "registries.mirrors and .configs must be mappings")
    for registry, mirror in mirrors.items():
        endpoints = mirror.get("endpoint") if isinstance(mirror, Mapping) else None
        if (
            not isinstance(endpoints, list)
            or not endpoints
            or not all(isinstance(e, str) and re.match(r"^https?://\S+$", e) for e in endpoints)
        ):
            raise SetupProblem(
                "registries",
                f"registries.mirrors.{registry}: endpoint must be a list of http:// or "
                "https:// URLs",
            )
        extra = sorted(str(k) for k in mirror if k not in ("endpoint", "rewrite"))
        if extra:
            raise SetupProblem(
                "registries",
                f"registries.mirrors.{registry} takes endpoint and rewrite, not {', '.join(extra)}",
            )
    for registry, settings in configs.items():
        keys = sorted(str(k) for k in settings) if isinstance(settings, Mapping) else None
        if keys is None or not set(keys) <= {"auth", "tls"}:
            raise SetupProblem(
                "registries",
                f"registries.configs.{registry} takes auth and tls (k3s' registries.yaml)",
            )
    if not mirrors:
        return None
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    out = io.StringIO()
    out.write("# written by edgefleet: the k8s pack's registries (docs/node-images.md)\n")
    yaml.dump({"mirrors": dict(mirrors), **({"configs": dict(configs)} if configs else {})}, out)
    return out.getvalue()


def _proxies(site: Site | None, network: Mapping[str, str], vip: str | None) -> dict[str, str]:
    """HTTP(S)_PROXY and NO_PROXY for k3s, in both cases, and CONTAINERD_* for its
    containerd; NO_PROXY holds the site's list, the site's CIDRs, the pod and service CIDRs
    and the cluster domain (and the VIP). Nothing when the site has no proxy."""
    net = site.spec.network if site is not None else None
    http = (net.httpProxy or "") if net else ""
    https = (net.httpsProxy or "") if net else ""
    if not (http or https) or net is None:
        return {}
    listed = net.noProxy or []
    entries = listed.split(",") if isinstance(listed, str) else list(listed)
    no_proxy = [
        *(e.strip() for e in entries),
        "localhost",
        "127.0.0.1",
        *net.cidrs,
        network["podCIDR"],
        network["serviceCIDR"],
        ".svc",
        "." + network["clusterDomain"],
        *([vip] if vip else []),
    ]
    joined = ",".join(dict.fromkeys(e for e in no_proxy if e))
    environment: dict[str, str] = {}
    for name, value in (("HTTP_PROXY", http), ("HTTPS_PROXY", https), ("NO_PROXY", joined)):
        if value:
            environment |= {name: value, name.lower(): value, f"CONTAINERD_{name}": value}
    return environment
