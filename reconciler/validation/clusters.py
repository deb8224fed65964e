"""Rules for one cluster in its site: profiles, mode, pools, appliances, CIDRs, policies.

:func:`resolve_cluster` is also what rendering uses to find a cluster's profiles and packs,
so a cluster that validates is exactly the one that renders.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from ..errors import Diagnostic
from ..loading import Doc, FleetRepo, SiteFiles
from ..models import NETWORK_KEYS, Cluster, ClusterProfile, Fleet, PackLayer
from ..models.common import Scalar, parsed_network
from ..models.profile import Layer
from ..packs import PackRegistry, PackVersion, version_matches
from .index import FleetIndex
from .profiles import check_presets, resolve_pack
from .variables import resolve_variables

Mode = Literal["virtualized", "containerized"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
HOSTS: dict[Mode, tuple[str, ...]] = {
    "virtualized": ("bare-metal-libvirt",),
    "containerized": ("virtual-machine", "bare-metal"),
}


@dataclass(frozen=True)
class ResolvedLayer:
    profile: Doc[ClusterProfile]
    index: int
    layer: Layer
    pack: PackVersion | None
    variables: dict[str, Scalar]


@dataclass(frozen=True)
class ResolvedCluster:
    doc: Doc[Cluster]
    core: Doc[ClusterProfile]
    mode: Mode
    layers: tuple[ResolvedLayer, ...]
    profiles: tuple[Doc[ClusterProfile], ...] = ()  # in the cluster's order

    @property
    def packs(self) -> dict[str, PackVersion]:
        return {rl.pack.name: rl.pack for rl in self.layers if rl.pack is not None}

    def profile_tags(self) -> dict[str, str]:
        """The tags of the cluster's profiles, a later profile's winning: what its nodes
        carry as labels (a cluster's own tags stay with the cluster)."""
        tags: dict[str, str] = {}
        for profile in self.profiles:
            tags.update(profile.model.metadata.tags)
        return tags


def resolve_cluster(
    site: SiteFiles, doc: Doc[Cluster], index: FleetIndex, registry: PackRegistry
) -> tuple[ResolvedCluster | None, list[Diagnostic]]:
    """The cluster's profiles and pack versions, or why they do not resolve."""
    problems: list[Diagnostic] = []
    layers: list[ResolvedLayer] = []
    profiles: list[Doc[ClusterProfile]] = []
    cores: list[tuple[int, Doc[ClusterProfile]]] = []
    installed: dict[str, str] = {}
    unresolved = False
    for i, ref in enumerate(doc.model.spec.profiles):
        loc: tuple[str | int, ...] = ("spec", "profiles", i)
        profile = index.profile(site, ref.name, ref.version)
        if profile is None:
            if ("ClusterProfile", ref.name) in index.broken:
                unresolved = True  # reported where the profile is defined
                continue
            versions = index.profile_versions(site, ref.name)
            if versions:
                have = ", ".join(versions)
                why = f"profile '{ref.name}' has no version {ref.version} (has {have})"
            else:
                why = f"unknown profile '{ref.name}'"
            problems.append(doc.at((*loc, "version" if versions else "name"), why))
            continue
        profiles.append(profile)
        if profile.model.spec.type in ("full", "infra"):
            cores.append((i, profile))
        variables, var_problems = resolve_variables(profile.model.spec.variables, ref.variables)
        for name, message in var_problems:
            where = (*loc, "variables", name) if name else loc
            problems.append(doc.at(where, f"profile {ref.name} {ref.version}: {message}"))
        for j, layer in enumerate(profile.model.spec.layers):
            pack = None
            if isinstance(layer, PackLayer):
                pack, _ = resolve_pack(registry, layer)  # reported on the profile itself
                owner = installed.get(layer.pack)
                if owner is not None and owner != ref.name:
                    problems.append(
                        doc.at(
                            loc,
                            f"pack '{layer.pack}' is installed by both profile '{owner}' and "
                            f"profile '{ref.name}'",
                        )
                    )
                installed[layer.pack] = ref.name
            layers.append(ResolvedLayer(profile, j, layer, pack, variables))
    if len(cores) != 1 and not ((problems or unresolved) and not cores):
        where = ("spec", "profiles", cores[1][0]) if len(cores) > 1 else ("spec", "profiles")
        problems.append(
            doc.at(
                where,
                f"a cluster needs exactly one full or infra profile (has {len(cores)})",
            )
        )
    if problems or unresolved or len(cores) != 1:
        return None, problems
    core = cores[0][1]
    mode: Mode = "virtualized" if core.model.spec.virtualized else "containerized"
    return ResolvedCluster(doc, core, mode, tuple(layers), tuple(profiles)), []


def check_cluster(
    site: SiteFiles,
    doc: Doc[Cluster],
    resolved: ResolvedCluster,
    index: FleetIndex,
    fleet: Fleet | None,
) -> Iterator[Diagnostic]:
    yield from _check_pools(site, doc, resolved.mode, index)
    yield from _check_overrides(doc, resolved)
    yield from _check_dependencies(doc, resolved)
    yield from _check_networks(site, doc)
    yield from _check_spanning(doc, resolved.mode)
    spec = doc.model.spec
    if resolved.mode == "virtualized" and spec.config.vip is None:
        yield doc.at(("spec", "config"), "a virtualized cluster needs spec.config.vip")
    backup = spec.policies.backup
    if backup is not None and fleet is not None:
        names = [loc.name for loc in fleet.spec.backupLocations]
        if backup.location not in names:
            yield doc.at(
                ("spec", "policies", "backup", "location"),
                f"unknown backup location '{backup.location}' "
                f"(fleet.yaml defines: {', '.join(names) or 'none'})",
            )
    if backup is not None:
        yield from _check_backup_scope(doc)


def _check_backup_scope(doc: Doc[Cluster]) -> Iterator[Diagnostic]:
    """A backup copies every node's whole data volume: every namespace, and the cluster's
    own resources (held by the control plane's datastore). What it cannot honour is refused
    until it can."""
    backup = doc.model.spec.policies.backup
    assert backup is not None
    where = ("spec", "policies", "backup")
    if backup.namespaces:
        yield doc.at(
            (*where, "namespaces"),
            "backup namespaces are not supported yet: a backup copies the nodes' whole data "
            "volumes, every namespace (remove namespaces)",
        )
    if backup.includeClusterResources == "never":
        yield doc.at(
            (*where, "includeClusterResources"),
            "includeClusterResources: never is not supported yet: a backup copies the control "
            "plane's data volumes, which hold the cluster's resources (use always or auto)",
        )


def _check_spanning(doc: Doc[Cluster], mode: Mode) -> Iterator[Diagnostic]:
    """A containerized cluster that spans appliances runs each node in its appliance's own
    network (host networking: nodes on other appliances reach it at the appliance's
    address), so an appliance runs one of its nodes at most."""
    if mode != "containerized":
        return
    placed: dict[str, list[tuple[int, int]]] = {}
    for i, pool in enumerate(doc.model.spec.nodePools):
        for index in range(1, pool.size + 1):
            placed.setdefault(pool.appliance_of(index), []).append((i, index))
    if len(placed) < 2:
        return
    for appliance, nodes in sorted(placed.items()):
        if len(nodes) > 1:
            i, _ = nodes[1]
            yield doc.at(
                ("spec", "nodePools", i, "appliances"),
                f"appliance '{appliance}' would run {len(nodes)} nodes of this cluster: the "
                "nodes of a containerized cluster spanning appliances use their appliance's "
                "network, one node per appliance",
            )


def _check_pools(
    site: SiteFiles, doc: Doc[Cluster], mode: Mode, index: FleetIndex
) -> Iterator[Diagnostic]:
    pools = doc.model.spec.nodePools
    appliances = {a.model.metadata.name: a.model for a in site.appliances}
    control = [i for i, p in enumerate(pools) if p.controlPlane]
    if len(control) != 1:
        where = ("spec", "nodePools", control[1]) if len(control) > 1 else ("spec", "nodePools")
        yield doc.at(where, f"a cluster needs exactly one control-plane pool (has {len(control)})")
    names: set[str] = set()
    for i, pool in enumerate(pools):
        loc: tuple[str | int, ...] = ("spec", "nodePools", i)
        if pool.name in names:
            yield doc.at((*loc, "name"), f"node pool '{pool.name}' is twice")
        names.add(pool.name)
        if pool.controlPlane and pool.size not in (1, 3, 5):
            yield doc.at(
                (*loc, "size"), f"control-plane pool size must be 1, 3 or 5 (got {pool.size})"
            )
        if mode == "virtualized":
            for part in ("resources", "placement"):
                if getattr(pool, part) is None:
                    yield doc.at(loc, f"pool '{pool.name}' of a virtualized cluster needs {part}")
            if (
                pool.resources is not None
                and pool.resources.dataDiskGiB is not None
                and pool.placement is not None
                and pool.placement.dataStoragePool is None
            ):
                yield doc.at(
                    (*loc, "placement"),
                    f"pool '{pool.name}' asks for a data disk (dataDiskGiB) but its placement "
                    "names no dataStoragePool",
                )
        else:
            for part in ("resources", "placement"):
                if getattr(pool, part) is not None:
                    yield doc.at(
                        (*loc, part),
                        f"pool '{pool.name}' of a containerized cluster takes no {part} "
                        "(its nodes are containers on the appliance)",
                    )
        for j, appliance_id in enumerate(pool.appliances):
            appliance = appliances.get(appliance_id)
            if appliance is None:
                if ("Appliance", appliance_id) in index.broken:
                    continue  # reported where the appliance is defined
                yield doc.at(
                    (*loc, "appliances", j),
                    f"appliance '{appliance_id}' is not declared in site '{site.name}'",
                )
            elif appliance.spec.type not in HOSTS[mode]:
                yield doc.at(
                    (*loc, "appliances", j),
                    f"a {mode} cluster cannot run on {appliance.spec.type} appliance "
                    f"'{appliance_id}' (needs {' or '.join(HOSTS[mode])})",
                )


def _check_overrides(doc: Doc[Cluster], resolved: ResolvedCluster) -> Iterator[Diagnostic]:
    packs = resolved.packs
    for name, override in doc.model.spec.packs.items():
        loc: tuple[str | int, ...] = ("spec", "packs", name)
        pack = packs.get(name)
        if pack is None:
            if not any(
                isinstance(rl.layer, PackLayer) and rl.layer.pack == name for rl in resolved.layers
            ):
                installed = ", ".join(sorted(packs)) or "none"
                yield doc.at(
                    loc, f"pack '{name}' is not installed by this cluster's profiles ({installed})"
                )
            continue
        yield from check_presets(doc, (*loc, "presets"), pack, override.presets)
        if pack.layer == "k8s":
            for key in NETWORK_KEYS:
                if key in override.values:
                    yield doc.at((*loc, "values", key), network_value(key))


def network_value(key: str) -> str:
    """Why a pack value may not set the cluster network."""
    return (
        f"{key} is the cluster network: set it in the cluster's spec.config.{key}, the one "
        "place it is written (checked against the site's CIDRs and given to every node)"
    )


def _check_dependencies(doc: Doc[Cluster], resolved: ResolvedCluster) -> Iterator[Diagnostic]:
    """Each pack's dependencies are installed in the same cluster, at a matching version."""
    installed = resolved.packs
    # a layer whose pack did not resolve is reported on its profile, not as a missing pack
    unresolved = {
        rl.layer.pack for rl in resolved.layers if isinstance(rl.layer, PackLayer) and not rl.pack
    }
    for i, ref in enumerate(doc.model.spec.profiles):
        for rl in resolved.layers:
            if rl.pack is None or rl.profile.model.metadata.name != ref.name:
                continue
            for dependency in rl.pack.meta.dependencies:
                have = installed.get(dependency.pack)
                wanted = dependency.version
                if have is None and dependency.pack in unresolved:
                    continue
                if have is not None and (wanted is None or version_matches(wanted, have.version)):
                    continue
                needs = f"{dependency.pack} {wanted}" if wanted else dependency.pack
                got = f" (the cluster has {have.version})" if have is not None else ""
                yield doc.at(
                    ("spec", "profiles", i),
                    f"pack {rl.pack.name} {rl.pack.version} needs pack {needs} in the same "
                    f"cluster{got}",
                )


def _check_networks(site: SiteFiles, doc: Doc[Cluster]) -> Iterator[Diagnostic]:
    """The cluster network, as every node receives it (spec.config, the one place it is
    written), against itself and every site CIDR."""
    config = doc.model.spec.config
    written = doc.data.get("spec", {}).get("config", {}) if isinstance(doc.data, dict) else {}

    def where(key: str) -> tuple[str, ...]:
        return ("spec", "config", key) if key in written else ("spec", "config")

    pod = parsed_network(config.podCIDR)
    service = parsed_network(config.serviceCIDR)
    named: list[tuple[str, IPNetwork, tuple[str, ...]]] = [
        (f"pod CIDR {pod}", pod, where("podCIDR")),
        (f"service CIDR {service}", service, where("serviceCIDR")),
    ]
    site_cidrs = site.site.model.spec.network.cidrs if site.site is not None else []
    for cidr in site_cidrs:
        named.append((f"site CIDR {cidr}", parsed_network(cidr), ()))
    for a in range(2):
        for b in range(a + 1, len(named)):
            name_a, net_a, loc_a = named[a]
            name_b, net_b, loc_b = named[b]
            if net_a.overlaps(net_b):
                # on the line that set the overlapping value (the later one when both did)
                shown = loc_b if loc_b and loc_b[-1] in written else loc_a
                yield doc.at(shown or ("spec", "config"), f"{name_a} overlaps {name_b}")
    dns = ipaddress.ip_address(config.cluster_dns())
    if dns.version != service.version or dns not in service:
        yield doc.at(
            where("clusterDNS"),
            f"cluster DNS {dns} is not in the service CIDR {service}",
        )
    elif dns in (service.network_address, service.broadcast_address):
        which = "network" if dns == service.network_address else "broadcast"
        yield doc.at(
            where("clusterDNS"), f"cluster DNS {dns} is the service CIDR's {which} address"
        )
    if config.vip is not None and site_cidrs:
        vip = ipaddress.ip_address(config.vip)
        if not any(vip in parsed_network(c) for c in site_cidrs):
            yield doc.at(
                ("spec", "config", "vip"),
                f"vip {config.vip} is not in any of the site's CIDRs ({', '.join(site_cidrs)})",
            )


def check_appliance_sharing(site: SiteFiles) -> Iterator[Diagnostic]:
    """An appliance serves at most one cluster (pools of one cluster may share it)."""
    owner: dict[str, str] = {}
    for doc in site.clusters:
        name = doc.model.metadata.name
        for i, pool in enumerate(doc.model.spec.nodePools):
            for j, appliance_id in enumerate(pool.appliances):
                other = owner.setdefault(appliance_id, name)
                if other != name:
                    yield doc.at(
                        ("spec", "nodePools", i, "appliances", j),
                        f"appliance '{appliance_id}' already serves cluster '{other}'; an "
                        "appliance serves at most one cluster",
                    )


def sensitive_values(site: SiteFiles, index: FleetIndex) -> set[str]:
    """The values of a site's sensitive profile variables, for output to mask."""
    found: set[str] = set()
    for doc in site.clusters:
        for ref in doc.model.spec.profiles:
            profile = index.profile(site, ref.name, ref.version)
            if profile is None:
                continue
            for variable in profile.model.spec.variables:
                if not variable.sensitive:
                    continue
                value = ref.variables.get(variable.name, variable.default)
                if value is not None and str(value):
                    found.add(str(value))
    return found


def fleet_secrets(repo: FleetRepo, index: FleetIndex) -> set[str]:
    """Every value of a sensitive variable in the repository, given or defaulted, for
    errors and output to mask."""
    found: set[str] = set()
    profiles = [*repo.profiles, *(p for site in repo.sites.values() for p in site.profiles)]
    for profile in profiles:
        for variable in profile.model.spec.variables:
            if variable.sensitive and variable.default is not None and str(variable.default):
                found.add(str(variable.default))
    for site in repo.sites.values():
        found |= sensitive_values(site, index)
    return found
