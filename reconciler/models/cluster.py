"""The ``Cluster`` kind: profiles, per-cluster pack overrides, node pools and day-2 policies."""

from __future__ import annotations

import functools
from typing import Annotated, Literal

from pydantic import Field

from .common import (
    Cidr,
    Cron,
    DnsDomain,
    IPv4,
    Labels,
    Name,
    NonEmptyStr,
    Scalar,
    Strict,
    Values,
    parsed_network,
)
from .profile import Manifest

UpdateStrategy = Literal["expand-first", "contract-first"]
# the cluster network: spec.config's keys, which the k8s pack's values receive under the same
# names and which no pack value may set (one place a user writes them)
NETWORK_KEYS = ("podCIDR", "serviceCIDR", "clusterDNS", "clusterDomain")


class ProfileRef(Strict):
    name: Name
    version: NonEmptyStr
    variables: dict[str, Scalar] = {}


class PackOverride(Strict):
    values: Values = {}
    presets: list[NonEmptyStr] = []


class ClusterConfig(Strict):
    """The cluster's settings. ``podCIDR``, ``serviceCIDR``, ``clusterDNS`` and
    ``clusterDomain`` are the cluster network: set here and nowhere else, checked against
    the site's CIDRs, and given to every node as they are (the k8s pack reads them)."""

    vip: IPv4 | None = None
    sshKeys: list[NonEmptyStr] = []
    ntpServers: list[NonEmptyStr] = []
    podCIDR: Cidr = "10.42.0.0/16"
    serviceCIDR: Cidr = "10.43.0.0/16"
    clusterDNS: IPv4 | None = None  # default: the service CIDR's tenth address, as k3s's
    clusterDomain: DnsDomain = "cluster.local"

    def cluster_dns(self) -> str:
        """The cluster DNS service address: as given, or the service CIDR's tenth address
        (10.43.0.10 for 10.43.0.0/16)."""
        if self.clusterDNS is not None:
            return self.clusterDNS
        return _tenth(self.serviceCIDR)

    def network(self) -> dict[str, str]:
        """The cluster network by :data:`NETWORK_KEYS`, defaults filled in."""
        return {
            "podCIDR": self.podCIDR,
            "serviceCIDR": self.serviceCIDR,
            "clusterDNS": self.cluster_dns(),
            "clusterDomain": self.clusterDomain,
        }


class Resources(Strict):
    cpu: Annotated[int, Field(ge=1)]
    memoryGiB: Annotated[int, Field(ge=1)]
    rootDiskGiB: Annotated[int, Field(ge=1)]
    dataDiskGiB: Annotated[int, Field(ge=1)] | None = None
    cpuSet: Annotated[str, Field(pattern=r"^\d+(-\d+)?(,\d+(-\d+)?)*$")] | None = None


class Placement(Strict):
    networkType: Literal["default", "bridge"] = "default"
    networks: Annotated[list[NonEmptyStr], Field(min_length=1)]
    imageStoragePool: NonEmptyStr
    targetStoragePool: NonEmptyStr
    dataStoragePool: NonEmptyStr | None = None


class NodePool(Strict):
    name: Name
    controlPlane: bool = False
    size: Annotated[int, Field(ge=0)]
    workerCapable: bool = False
    updateStrategy: UpdateStrategy = "expand-first"
    appliances: Annotated[list[Name], Field(min_length=1)]
    resources: Resources | None = None
    placement: Placement | None = None

    def appliance_of(self, index: int) -> str:
        """The appliance that runs the pool's node ``index`` (from 1): round robin."""
        return self.appliances[(index - 1) % len(self.appliances)]


class OsPatch(Strict):
    schedule: Cron
    onBoot: bool = False
    rebootIfRequired: bool = False


class Scans(Strict):
    configuration: Cron | None = None
    penetration: Cron | None = None
    conformance: Cron | None = None


class Backup(Strict):
    schedule: Cron
    location: Name
    prefix: str = ""
    expiryHours: Annotated[int, Field(ge=1)] = 168
    namespaces: list[Name] = []
    includeClusterResources: Literal["always", "never", "auto"] = "auto"


class Policies(Strict):
    osPatch: OsPatch | None = None
    scans: Scans | None = None
    backup: Backup | None = None


class ClusterSpec(Strict):
    profiles: Annotated[list[ProfileRef], Field(min_length=1)]
    packs: dict[str, PackOverride] = {}
    config: ClusterConfig = ClusterConfig()
    nodePools: Annotated[list[NodePool], Field(min_length=1)]
    policies: Policies = Policies()
    # this cluster's own raw manifests (a store's secrets), after its profiles' layers
    manifests: list[Manifest] = []

    def control_plane_appliances(self) -> list[str]:
        """The appliances that run a control-plane node, and so receive the manifests."""
        found = {
            pool.appliance_of(i)
            for pool in self.nodePools
            if pool.controlPlane
            for i in range(1, pool.size + 1)
        }
        return sorted(found)


class ClusterMetadata(Strict):
    name: Name
    description: str = ""  # for operators: shown by the dashboard and the API
    tags: Labels = {}


class Cluster(Strict):
    apiVersion: Literal["edgefleet.dev/v1"]
    kind: Literal["Cluster"]
    metadata: ClusterMetadata
    spec: ClusterSpec


@functools.lru_cache(maxsize=1024)
def _tenth(cidr: str) -> str:
    """The tenth address of a (valid) network, its first when it has no tenth."""
    found = parsed_network(cidr)
    return str(found[10]) if found.num_addresses > 11 else str(found[1])
