"""One broken repository per rule and per kind of malformed input.

Each case breaks the valid base fleet in one place and asserts the exit code, the file, the
line and the reason of the one error reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.support.fleet import FleetFiles

STORE = "sites/store-1/clusters/pos.yaml"
HOSPITAL = "sites/hospital-1/clusters/imaging.yaml"
STORE_PROFILE = "profiles/store-1.0.0.yaml"
EXTRAS = "profiles/extras-1.0.0.yaml"


@dataclass
class Case:
    id: str
    mutate: Callable[[FleetFiles], None]
    path: str
    # text on the offending line after the change, the line number, or how to find it
    needle: str | int | Callable[[FleetFiles], int]
    reason: str


def edit(path: str, old: str, new: str) -> Callable[[FleetFiles], None]:
    return lambda f: f.edit(path, old, new)


def _duplicate_appliance(f: FleetFiles) -> None:
    f.write(
        "sites/restaurant-7/appliances/store-1-a.yaml",
        f.read("sites/store-1/appliances/store-1-a.yaml"),
    )


def _appliance_in_two_clusters(f: FleetFiles) -> None:
    f.write(
        "sites/store-1/clusters/kiosk.yaml",
        f.read(STORE).replace("name: pos", "name: kiosk"),
    )


def _two_nodes_on_one_appliance_of_a_spanning_cluster(f: FleetFiles) -> None:
    f.write(
        "sites/store-1/appliances/store-1-b.yaml",
        f.read("sites/store-1/appliances/store-1-a.yaml").replace("store-1-a", "store-1-b"),
    )
    f.edit(
        STORE,
        "  policies:\n",
        "    - name: tills\n      size: 2\n      appliances: [store-1-b]\n  policies:\n",
    )


def _two_dev_presets(f: FleetFiles) -> None:
    f.edit(STORE_PROFILE, "presets: [small]", "presets: [small, large]")


def _site_profile_shadows(f: FleetFiles) -> None:
    f.write("sites/store-1/profiles/extras-1.0.0.yaml", f.read(EXTRAS))


def _repo_k3s_pack_setting_the_network(f: FleetFiles) -> None:
    """A repository k8s pack whose values and presets set the cluster network."""
    f.write(
        "packs/k3s/9.0.0/pack.yaml",
        "name: k3s\nversion: 9.0.0\nlayer: k8s\ndescription: repo k3s\n",
    )
    f.write("packs/k3s/9.0.0/values.yaml", "nodeImage: rancher/k3s:v1\npodCIDR: 192.168.1.0/25\n")
    f.write(
        "packs/k3s/9.0.0/presets.yaml",
        "presets:\n  - name: dns\n    group: dns\n    values:\n      clusterDNS: 10.43.0.53\n",
    )


def _two_documents(f: FleetFiles) -> None:
    f.append("sites/store-1/appliances/store-1-a.yaml", "---\nkind: Appliance\n")


def _not_utf8(f: FleetFiles) -> None:
    path = f.root / "sites/store-1/site.yaml"
    path.write_bytes(path.read_bytes().replace(b"Europe/Berlin", b"Europe/Berl\xffin"))


def _add_on_twice(f: FleetFiles) -> None:
    f.write(
        "profiles/metrics-1.0.0.yaml",
        """
        apiVersion: edgefleet.dev/v1
        kind: ClusterProfile
        metadata:
          name: metrics
          version: 1.0.0
        spec:
          type: add-on
          layers:
            - layer: addon
              pack: monitoring
              version: 1.7.0
        """,
    )
    f.edit(
        STORE,
        "    - name: extras\n",
        "    - name: metrics\n      version: 1.0.0\n    - name: extras\n",
    )


def _missing_dependency(f: FleetFiles) -> None:
    f.write(
        "packs/pos/1.0.0/pack.yaml",
        "name: pos\nversion: 1.0.0\nlayer: addon\ndependencies:\n  - {pack: local-path, version: 0.0.28}\n",
    )
    f.edit(
        EXTRAS,
        "    - layer: addon\n      chart:",
        "    - layer: addon\n      pack: pos\n      version: 1.x\n    - layer: addon\n      chart:",
    )


def _infra_with_add_on(f: FleetFiles) -> None:
    f.edit("profiles/hospital-1.0.0.yaml", "type: full", "type: infra")
    f.edit(
        "profiles/hospital-1.0.0.yaml",
        "      version: 0.0.30\n",
        "      version: 0.0.30\n    - layer: addon\n      pack: monitoring\n      version: 1.x\n",
    )


CASES = [
    Case("data-disk-without-pool", edit(HOSPITAL, "networks: [default]\n        imageStoragePool: images\n        targetStoragePool: vms\n        dataStoragePool: data\n", "networks: [default]\n        imageStoragePool: images\n        targetStoragePool: vms\n"),
         HOSPITAL, lambda f: f.line_of(HOSPITAL, "networks: [default]") - 1,
         "pool 'workers' asks for a data disk (dataDiskGiB) but its placement names no dataStoragePool"),
    Case(
        "pack-dependency-missing",
        _missing_dependency,
        STORE,
        "- name: extras",
        "pack pos 1.0.0 needs pack local-path 0.0.28 in the same cluster (the cluster has 0.0.30)",
    ),
    Case("yaml-syntax", edit(STORE, "size: 1", "size: [1"), STORE, "size: [1", "YAML syntax error"),
    Case(
        "duplicate-key",
        edit(STORE, "      size: 1\n", "      size: 1\n      size: 1\n"),
        STORE,
        lambda f: f.line_of(STORE, "workerCapable") - 1,
        "duplicate key 'size'",
    ),
    Case(
        "wrong-type",
        edit(STORE, "size: 1", "size: one"),
        STORE,
        "size: one",
        "spec.nodePools[0].size must be an integer (got string 'one')",
    ),
    Case(
        "unknown-field",
        edit(STORE, "workerCapable: true", "workerCapabel: true"),
        STORE,
        "workerCapabel",
        "unknown field 'spec.nodePools[0].workerCapabel'",
    ),
    Case(
        "unknown-kind",
        edit("sites/store-1/appliances/store-1-a.yaml", "kind: Appliance", "kind: Applience"),
        "sites/store-1/appliances/store-1-a.yaml",
        "kind:",
        "unknown kind 'Applience'",
    ),
    Case(
        "wrong-api-version",
        edit(STORE, "edgefleet.dev/v1", "edgefleet.dev/v2"),
        STORE,
        "apiVersion",
        "apiVersion must be edgefleet.dev/v1",
    ),
    Case(
        "missing-field",
        edit("sites/store-1/appliances/store-1-a.yaml", "  type: bare-metal\n", "  arch: amd64\n"),
        "sites/store-1/appliances/store-1-a.yaml",
        "spec:",
        "missing required field 'spec.type'",
    ),
    Case(
        "missing-site-yaml",
        lambda f: f.remove("sites/store-1/site.yaml"),
        "sites/store-1/site.yaml",
        1,
        "the site folder 'store-1' needs a site.yaml",
    ),
    Case(
        "site-name-mismatch",
        edit("sites/store-1/site.yaml", "name: store-1", "name: store-01"),
        "sites/store-1/site.yaml",
        "name: store-01",
        "site name must match its folder 'store-1'",
    ),
    Case(
        "duplicate-appliance-id",
        _duplicate_appliance,
        "sites/store-1/appliances/store-1-a.yaml",
        "name: store-1-a",
        "appliance ID 'store-1-a' is already used in site 'restaurant-7'",
    ),
    Case(
        "appliance-in-two-clusters",
        _appliance_in_two_clusters,
        STORE,
        "appliances: [",
        "appliance 'store-1-a' already serves cluster 'kiosk'",
    ),
    Case(
        "pod-cidr-overlaps-site",
        edit(STORE, "  nodePools:", "  config:\n    podCIDR: 192.168.0.0/16\n  nodePools:"),
        STORE,
        "podCIDR",
        "pod CIDR 192.168.0.0/16 overlaps site CIDR 192.168.1.0/24",
    ),
    Case(
        "service-cidr-overlaps-pod",
        edit(STORE, "  nodePools:", "  config:\n    serviceCIDR: 10.42.128.0/17\n  nodePools:"),
        STORE,
        "serviceCIDR",
        "pod CIDR 10.42.0.0/16 overlaps service CIDR 10.42.128.0/17",
    ),
    Case(
        "service-cidr-overlaps-site",
        edit(STORE, "  nodePools:", "  config:\n    serviceCIDR: 192.168.1.128/25\n  nodePools:"),
        STORE,
        "serviceCIDR",
        "service CIDR 192.168.1.128/25 overlaps site CIDR 192.168.1.0/24",
    ),
    Case(
        "site-cidr-added-under-the-pod-cidr",
        edit("sites/store-1/site.yaml", "cidrs: [192.168.1.0/24]", "cidrs: [192.168.1.0/24, 10.42.7.0/24]"),
        STORE,
        "spec:",
        "pod CIDR 10.42.0.0/16 overlaps site CIDR 10.42.7.0/24",
    ),
    Case(
        "cluster-dns-outside-the-service-cidr",
        edit(STORE, "  nodePools:", "  config:\n    clusterDNS: 10.42.0.10\n  nodePools:"),
        STORE,
        "clusterDNS",
        "cluster DNS 10.42.0.10 is not in the service CIDR 10.43.0.0/16",
    ),
    Case(
        "bad-cluster-domain",
        edit(STORE, "  nodePools:", "  config:\n    clusterDomain: Cluster_Local\n  nodePools:"),
        STORE,
        "clusterDomain",
        "'Cluster_Local' is not a DNS domain",
    ),
    Case(
        # the grocery-store case: a pack override would reach the nodes unchecked
        "pod-cidr-in-a-cluster-pack-override",
        edit(STORE, "maxPods: 80", "maxPods: 80\n        podCIDR: 192.168.1.0/25"),
        STORE,
        "podCIDR",
        "podCIDR is the cluster network: set it in the cluster's spec.config.podCIDR",
    ),
    Case(
        "service-cidr-in-a-profile-layer",
        edit(STORE_PROFILE, "presets: [small]", "presets: [small]\n      values:\n        serviceCIDR: 10.96.0.0/12"),
        STORE_PROFILE,
        "serviceCIDR",
        "serviceCIDR is the cluster network: each cluster sets it in its spec.config.serviceCIDR",
    ),
    Case(
        "pod-cidr-in-a-repository-pack",
        _repo_k3s_pack_setting_the_network,
        "packs/k3s/9.0.0/values.yaml",
        "podCIDR",
        "podCIDR is the cluster network, which each cluster sets in its spec.config.podCIDR",
    ),
    Case(
        "cluster-dns-in-a-repository-pack-preset",
        _repo_k3s_pack_setting_the_network,
        "packs/k3s/9.0.0/presets.yaml",
        "clusterDNS",
        "clusterDNS is the cluster network, which each cluster sets in its spec.config.clusterDNS",
    ),
    Case(
        "site-cidrs-overlap",
        edit(
            "sites/store-1/site.yaml",
            "cidrs: [192.168.1.0/24]",
            "cidrs: [192.168.1.0/24, 192.168.0.0/20]",
        ),
        "sites/store-1/site.yaml",
        "cidrs:",
        "site CIDR 192.168.0.0/20 overlaps site CIDR 192.168.1.0/24",
    ),
    Case(
        "bad-cidr",
        edit("sites/store-1/site.yaml", "192.168.1.0/24", "192.168.1.1/24"),
        "sites/store-1/site.yaml",
        "cidrs:",
        "'192.168.1.1/24' is not a CIDR network address",
    ),
    Case(
        "control-plane-of-2",
        edit(HOSPITAL, "size: 3", "size: 2"),
        HOSPITAL,
        "size: 2",
        "control-plane pool size must be 1, 3 or 5 (got 2)",
    ),
    Case(
        "two-control-plane-pools",
        edit(HOSPITAL, "    - name: workers\n", "    - name: workers\n      controlPlane: true\n"),
        HOSPITAL,
        "- name: workers",
        "a cluster needs exactly one control-plane pool (has 2)",
    ),
    Case(
        "virtualized-on-bare-metal",
        edit(
            "sites/hospital-1/appliances/hospital-1-hv3.yaml",
            "type: bare-metal-libvirt",
            "type: bare-metal",
        ),
        HOSPITAL,
        "appliances: [hospital-1-hv1, hospital-1-hv2, hospital-1-hv3]",
        "a virtualized cluster cannot run on bare-metal appliance 'hospital-1-hv3'",
    ),
    Case(
        "containerized-on-libvirt",
        edit(
            "sites/store-1/appliances/store-1-a.yaml",
            "type: bare-metal",
            "type: bare-metal-libvirt",
        ),
        STORE,
        "appliances: [",
        "a containerized cluster cannot run on bare-metal-libvirt appliance 'store-1-a'",
    ),
    Case(
        "missing-vip",
        edit(HOSPITAL, "    vip: 172.16.10.50\n", ""),
        HOSPITAL,
        "config:",
        "a virtualized cluster needs spec.config.vip",
    ),
    Case(
        "vip-outside-site",
        edit(HOSPITAL, "vip: 172.16.10.50", "vip: 172.16.99.50"),
        HOSPITAL,
        "vip:",
        "vip 172.16.99.50 is not in any of the site's CIDRs",
    ),
    Case(
        "containerized-pool-with-resources",
        edit(
            STORE,
            "      workerCapable: true\n",
            "      workerCapable: true\n      resources: {cpu: 2, memoryGiB: 4, rootDiskGiB: 20}\n",
        ),
        STORE,
        "resources:",
        "pool 'main' of a containerized cluster takes no resources",
    ),
    Case(
        "virtualized-pool-without-placement",
        edit(
            HOSPITAL,
            "      placement:\n        networks: [default]\n        imageStoragePool: images\n        targetStoragePool: vms\n        dataStoragePool: data\n",
            "",
        ),
        HOSPITAL,
        "- name: workers",
        "pool 'workers' of a virtualized cluster needs placement",
    ),
    Case(
        "bad-cron",
        edit(STORE, '"30 2 * * *"', '"30 25 * * *"'),
        STORE,
        "schedule:",
        "cron expression '30 25 * * *' does not parse",
    ),
    Case(
        "bad-timezone",
        edit("sites/store-1/site.yaml", "Europe/Berlin", "Europe/Berlinn"),
        "sites/store-1/site.yaml",
        "timezone:",
        "'Europe/Berlinn' is not an IANA time zone",
    ),
    Case(
        "bad-maintenance-start",
        edit("sites/hospital-1/site.yaml", '"02:00"', '"25:00"'),
        "sites/hospital-1/site.yaml",
        "start:",
        "'25:00' is not a time of day HH:MM",
    ),
    Case(
        "unknown-preset",
        edit(STORE_PROFILE, "presets: [small]", "presets: [tiny]"),
        STORE_PROFILE,
        "presets:",
        "has no preset 'tiny'",
    ),
    Case(
        "two-presets-one-group",
        _two_dev_presets,
        STORE_PROFILE,
        "presets:",
        "presets 'small' and 'large' are both in group 'size'",
    ),
    Case(
        "unknown-override-preset",
        edit(STORE, "        maxPods: 80\n", "        maxPods: 80\n      presets: [huge]\n"),
        STORE,
        "presets: [huge]",
        "has no preset 'huge'",
    ),
    Case(
        "manifest-name-is-a-path",
        edit(STORE_PROFILE, "name: store-config.yaml", "name: ../etc/store-config.yaml"),
        STORE_PROFILE,
        "name: ../etc",
        "manifest name '../etc/store-config.yaml' must be a plain file name",
    ),
    Case(
        "unknown-profile",
        edit(STORE, "name: extras", "name: extra"),
        STORE,
        "name: extra",
        "unknown profile 'extra'",
    ),
    Case(
        "unknown-profile-version",
        edit(HOSPITAL, "version: 1.0.0", "version: 1.1.0"),
        HOSPITAL,
        "version: 1.1.0",
        "profile 'hospital' has no version 1.1.0 (has 1.0.0)",
    ),
    Case(
        "train-matches-nothing",
        edit(STORE_PROFILE, "version: 1.30.x", "version: 2.x"),
        STORE_PROFILE,
        "version: 2.x",
        "pack 'k3s' has no version matching train '2.x'",
    ),
    Case(
        "unknown-pack-version",
        edit(STORE_PROFILE, "version: 3.28.2", "version: 3.99.0"),
        STORE_PROFILE,
        "version: 3.99.0",
        "pack 'calico' has no version matching version '3.99.0'",
    ),
    Case(
        "unknown-pack",
        edit(EXTRAS, "pack: monitoring", "pack: monitorin"),
        EXTRAS,
        "pack: monitorin",
        "unknown pack 'monitorin'",
    ),
    Case(
        "pack-in-wrong-layer",
        edit(STORE_PROFILE, "- layer: cni\n      pack: calico", "- layer: k8s\n      pack: calico"),
        STORE_PROFILE,
        lambda f: f.line_of(STORE_PROFILE, "pack: calico") - 1,
        "pack 'calico' is a cni pack, not k8s",
    ),
    Case(
        "missing-required-variable",
        edit(STORE, '      variables:\n        storeId: "0001"\n', ""),
        STORE,
        "- name: store",
        "profile store 1.0.0: required variable 'storeId' is not set",
    ),
    Case(
        "variable-wrong-format",
        edit(STORE, 'storeId: "0001"', "storeId: 1"),
        STORE,
        "storeId: 1",
        "variable 'storeId' must be a string (got 1)",
    ),
    Case(
        "variable-fails-regex",
        edit(STORE, 'storeId: "0001"', 'storeId: "01"'),
        STORE,
        "storeId:",
        "variable 'storeId' must match /[0-9]{4}/ (got '01')",
    ),
    Case(
        "unknown-variable",
        edit(STORE, 'storeId: "0001"', 'storeId: "0001"\n        storeID: "1"'),
        STORE,
        "storeID",
        "unknown variable 'storeID'",
    ),
    Case(
        "add-on-with-core-layer",
        edit(
            EXTRAS,
            "    - layer: addon\n      pack: monitoring",
            "    - layer: os\n      pack: monitoring",
        ),
        EXTRAS,
        "- layer: os",
        "an add-on profile cannot have a core 'os' layer",
    ),
    Case(
        "full-missing-core-layer",
        edit(
            "profiles/hospital-1.0.0.yaml",
            "    - layer: csi\n      pack: local-path\n      version: 0.0.30\n",
            "",
        ),
        "profiles/hospital-1.0.0.yaml",
        "layers:",
        "a full profile needs exactly one 'csi' layer (has 0)",
    ),
    Case(
        "same-pack-twice",
        _add_on_twice,
        STORE,
        "- name: extras",
        "pack 'monitoring' is installed by both profile 'metrics' and profile 'extras'",
    ),
    Case(
        "unknown-backup-location",
        edit(STORE, "location: nas", "location: nas2"),
        STORE,
        "location: nas2",
        "unknown backup location 'nas2' (fleet.yaml defines: nas, s3-main)",
    ),
    Case(
        "backup-namespaces",
        edit(STORE, "      location: nas\n", "      location: nas\n      namespaces: [pos]\n"),
        STORE,
        "namespaces: [pos]",
        "backup namespaces are not supported yet: a backup copies the nodes' whole data "
        "volumes, every namespace (remove namespaces)",
    ),
    Case(
        "backup-without-cluster-resources",
        edit(
            STORE,
            "      location: nas\n",
            "      location: nas\n      includeClusterResources: never\n",
        ),
        STORE,
        "includeClusterResources: never",
        "includeClusterResources: never is not supported yet: a backup copies the control "
        "plane's data volumes, which hold the cluster's resources (use always or auto)",
    ),
    Case(
        "containerized-spanning-two-nodes-on-one-appliance",
        _two_nodes_on_one_appliance_of_a_spanning_cluster,
        STORE,
        "appliances: [store-1-b]",
        "appliance 'store-1-b' would run 2 nodes of this cluster: the nodes of a "
        "containerized cluster spanning appliances use their appliance's network, one node "
        "per appliance",
    ),
    Case(
        "s3-without-bucket",
        edit("fleet.yaml", "      bucket: acme-backups\n", ""),
        "fleet.yaml",
        "- name: s3-main",
        "an s3 backup location needs a bucket",
    ),
    Case(
        "appliance-not-in-site",
        edit(STORE, "appliances: [store-1-a]", "appliances: [store-1-b]"),
        STORE,
        "appliances: [",
        "appliance 'store-1-b' is not declared in site 'store-1'",
    ),
    Case(
        "override-of-missing-pack",
        edit(STORE, "    k3s:\n", "    k3ss:\n"),
        STORE,
        "k3ss:",
        "pack 'k3ss' is not installed by this cluster's profiles",
    ),
    Case(
        "two-full-profiles",
        edit(
            STORE,
            "    - name: extras\n      version: 1.0.0\n",
            "    - name: extras\n      version: 1.0.0\n    - name: hospital\n      version: 1.0.0\n",
        ),
        STORE,
        "- name: hospital",
        "a cluster needs exactly one full or infra profile (has 2)",
    ),
    Case(
        "site-profile-shadows-fleet",
        _site_profile_shadows,
        "sites/store-1/profiles/extras-1.0.0.yaml",
        "name: extras",
        "profile extras 1.0.0 is already defined fleet-wide",
    ),
    Case(
        "profile-file-misnamed",
        lambda f: f.write("profiles/store-2.0.0.yaml", f.read(STORE_PROFILE)),
        "profiles/store-2.0.0.yaml",
        lambda f: f.line_of("profiles/store-2.0.0.yaml", "version: 1.0.0") - 1,
        "profile file must be named store-1.0.0.yaml (got store-2.0.0)",
    ),
    Case(
        "appliance-file-misnamed",
        edit("sites/store-1/appliances/store-1-a.yaml", "name: store-1-a", "name: store-1-z"),
        "sites/store-1/appliances/store-1-a.yaml",
        "name: store-1-z",
        "Appliance file must be named store-1-z.yaml (got store-1-a)",
    ),
    Case(
        "site-in-no-wave",
        edit(
            "fleet.yaml",
            "      - name: everyone\n",
            "      - name: everyone\n        selector: {labels: {ring: main}}\n",
        ),
        "sites/hospital-1/site.yaml",
        "labels:",
        "site 'hospital-1' matches no rollout wave",
    ),
    Case(
        "empty-selector-not-last",
        edit(
            "fleet.yaml",
            "      - name: canary\n        selector:\n          labels:\n            ring: canary\n",
            "      - name: canary\n",
        ),
        "fleet.yaml",
        "- name: canary",
        "only the last wave may select every site",
    ),
    Case(
        "bad-max-failures",
        edit("fleet.yaml", "maxFailures: 10%", "maxFailures: ten"),
        "fleet.yaml",
        "maxFailures",
        "maxFailures 'ten' must be a count or a percentage like 10%",
    ),
    Case(
        "bad-duration",
        edit("fleet.yaml", "soak: 10m", "soak: 10 minutes"),
        "fleet.yaml",
        "soak:",
        "'10 minutes' is not a duration",
    ),
    Case(
        "two-documents",
        _two_documents,
        "sites/store-1/appliances/store-1-a.yaml",
        1,
        "expected exactly one YAML document, found 2 documents",
    ),
    Case(
        "not-utf8",
        _not_utf8,
        "sites/store-1/site.yaml",
        lambda f: (
            (f.root / "sites/store-1/site.yaml")
            .read_bytes()
            .split(b"\n")
            .index(b"  timezone: Europe/Berl\xffin")
            + 1
        ),
        "file is not UTF-8 text",
    ),
    Case(
        "bad-ca-cert",
        edit("sites/hospital-1/site.yaml", "MIIBgzCCASmgAwIBAgIUM9mt", "MIIBgzCCASmgAwIBAgIU"),
        "sites/hospital-1/site.yaml",
        "- |",
        "spec.caCerts[0]: the CA certificate does not parse as an X.509 PEM certificate",
    ),
    Case("cron-backwards-weekday-range", edit(STORE, '"30 2 * * *"', '"30 2 * * fri-sun"'), STORE, "schedule:",
         "cron expression '30 2 * * fri-sun' does not parse: day of week field 'fri-sun': the range fri-sun runs backwards"),
    Case("cron-reboot-macro", edit(STORE, '"30 2 * * *"', '"@reboot"'), STORE, "schedule:",
         "cron expression '@reboot' does not parse: @reboot is not a schedule"),
    Case("cron-quartz-extension", edit(STORE, '"30 2 * * *"', '"30 2 L * *"'), STORE, "schedule:",
         "cron expression '30 2 L * *' does not parse: day of month field 'L': 'l' is not a number"),
    Case("cron-never-runs", edit(STORE, '"30 2 * * *"', '"30 2 30 feb *"'), STORE, "schedule:",
         "day 30 of month feb never comes, so the schedule never runs"),
    Case("maintenance-day-unknown", edit("sites/hospital-1/site.yaml", "days: [sat, sun]", "days: [Sat, Sunday]"),
         "sites/hospital-1/site.yaml", "days:", "spec.maintenanceWindows[0].days[1] must be one of"),
    Case("infra-profile-with-add-on", _infra_with_add_on, "profiles/hospital-1.0.0.yaml", "- layer: addon",
         "an infra profile holds only its os, k8s, cni and csi layers"),
    Case(
        "unexpected-file",
        lambda f: f.write("sites/store-1/cluster/pos.yaml", f.read(STORE)),
        "sites/store-1/cluster/pos.yaml",
        1,
        "unexpected file: a site folder holds site.yaml",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_broken_repository_reports_file_line_and_reason(
    fleet: FleetFiles, run_cli, case: Case
) -> None:
    case.mutate(fleet)
    result = run_cli("validate", str(fleet.root), "--format", "json")
    assert result.code == 1, result.out
    report = json.loads(result.out)
    if isinstance(case.needle, str):
        line = fleet.line_of(case.path, case.needle)
    else:
        line = case.needle if isinstance(case.needle, int) else case.needle(fleet)
    matching = [
        e
        for e in report["errors"]
        if e["file"] == case.path and e["line"] == line and case.reason in e["message"]
    ]
    assert matching, f"expected {case.path}:{line}: ...{case.reason}... in\n" + "\n".join(
        f"{e['file']}:{e['line']}: {e['message']}" for e in report["errors"]
    )


def test_base_fleet_is_valid(fleet: FleetFiles, run_cli) -> None:
    result = run_cli("validate", str(fleet.root))
    assert result.code == 0, result.out
    assert result.out.strip() == "valid (3 sites, 5 appliances, 3 clusters)"


# -- accepted forms: each edit of the valid base fleet still validates ----------------------

ACCEPTED = [
    ("cron-weekday-range-with-sunday-first", edit(STORE, '"30 2 * * *"', '"0 4 * * 0-6"')),
    ("cron-weekday-step", edit(STORE, '"30 2 * * *"', '"0 4 * * */2"')),
    ("cron-sunday-as-7", edit(STORE, '"30 2 * * *"', '"0 4 * * 5-7"')),
    ("cron-macro", edit(STORE, '"30 2 * * *"', '"@daily"')),
    ("cron-names-in-any-case", edit(STORE, '"30 2 * * *"', '"0 4 1,15 Jan-Jun/2 MON"')),
    ("maintenance-days-capitalized", edit("sites/hospital-1/site.yaml", "days: [sat, sun]", "days: [Sat, SUN]")),
    ("no-proxy-as-a-list", edit("sites/hospital-1/site.yaml", "noProxy: .hospital.test,172.16.10.0/24",
                                "noProxy:\n              - .hospital.test\n              - 172.16.10.0/24")),
]


@pytest.mark.parametrize(("mutate"), [m for _, m in ACCEPTED], ids=[i for i, _ in ACCEPTED])
def test_accepted_forms(fleet: FleetFiles, run_cli, mutate: Callable[[FleetFiles], None]) -> None:
    mutate(fleet)
    result = run_cli("validate", str(fleet.root))
    assert result.code == 0, result.out


# -- one error per root cause: what only follows from a broken document is not reported ---

VENDOR_PACK = {
    "vendor/pos/1.0.0/pack.yaml": "name: pos\nversion: 1.0.0\nlayer: addon\n",
    "vendor/pos/1.0.0/values.yaml": "replicas: 1\n",
}


def _with_vendor_pack(f: FleetFiles) -> None:
    """A pack from an extra registry folder, used by the extras profile (every site)."""
    for path, text in VENDOR_PACK.items():
        f.write(path, text)
    f.edit("fleet.yaml", "  backupLocations:", "  packRegistries: [vendor]\n  backupLocations:")
    f.edit(EXTRAS, "    - layer: addon\n      chart:", "    - layer: addon\n      pack: pos\n      version: 1.0.0\n    - layer: addon\n      chart:")


def _broken_fleet_with_registry(f: FleetFiles) -> None:
    _with_vendor_pack(f)
    f.edit("fleet.yaml", "maxFailures: 10%", "maxFailures: ten")


def _unparsable_fleet_with_registry(f: FleetFiles) -> None:
    _with_vendor_pack(f)
    f.edit("fleet.yaml", "maxFailures: 10%", "maxFailures: [10%")


def _broken_pack_in_use(f: FleetFiles) -> None:
    _with_vendor_pack(f)
    f.write("vendor/pos/1.0.0/pack.yaml", "name: pos\nversion: 1.0.0\nlayer: add-on\n")


def _dependency_on_broken_pack(f: FleetFiles) -> None:
    _with_vendor_pack(f)
    f.write("vendor/pos/1.0.0/pack.yaml", "name: pos\nversion: 1.0.0\nlayer: addon\ndependencies:\n  - {pack: queue, version: 1.0.0}\n")
    f.write("vendor/queue/1.0.0/pack.yaml", "name: queue\nversion: 1.0.0\nlayer: addn\n")
    f.edit(EXTRAS, "      pack: pos\n", "      pack: queue\n      version: 1.0.0\n    - layer: addon\n      pack: pos\n")


CASCADES = [
    ("broken-fleet-yaml-keeps-its-pack-folders", _broken_fleet_with_registry, "fleet.yaml", "maxFailures 'ten' must be"),
    ("unparsable-fleet-yaml-hides-pack-references", _unparsable_fleet_with_registry, "fleet.yaml", "YAML syntax error"),
    ("broken-pack-is-not-unknown-where-used", _broken_pack_in_use, "vendor/pos/1.0.0/pack.yaml", "layer"),
    ("dependency-on-a-broken-pack", _dependency_on_broken_pack, "vendor/queue/1.0.0/pack.yaml", "layer"),
    ("broken-profile-is-not-unknown-where-used", edit(STORE_PROFILE, "type: full", "type: fulll"), STORE_PROFILE, "spec.type"),
    ("unparsable-profile-is-not-unknown-where-used", edit(STORE_PROFILE, "type: full", "type: [full"), STORE_PROFILE, "YAML syntax error"),
    ("unparsable-appliance-is-not-undeclared-where-used", edit("sites/store-1/appliances/store-1-a.yaml", "type: bare-metal", "type: [bare"),
     "sites/store-1/appliances/store-1-a.yaml", "YAML syntax error"),
    ("broken-appliance-is-not-undeclared-where-used", edit("sites/store-1/appliances/store-1-a.yaml", "type: bare-metal", "type: metal"),
     "sites/store-1/appliances/store-1-a.yaml", "spec.type"),
]


@pytest.mark.parametrize(("mutate", "path", "reason"), [c[1:] for c in CASCADES], ids=[c[0] for c in CASCADES])
def test_one_error_per_root_cause(fleet: FleetFiles, run_cli, mutate: Callable[[FleetFiles], None], path: str, reason: str) -> None:
    mutate(fleet)
    result = run_cli("validate", str(fleet.root), "--format", "json")
    assert result.code == 1, result.out
    errors = json.loads(result.out)["errors"]
    shown = "\n".join(f"{e['file']}:{e['line']}: {e['message']}" for e in errors)
    assert len(errors) == 1, shown
    assert errors[0]["file"] == path and reason in errors[0]["message"], shown


def test_the_vendor_pack_fleet_is_valid(fleet: FleetFiles, run_cli) -> None:
    _with_vendor_pack(fleet)
    result = run_cli("validate", str(fleet.root))
    assert result.code == 0, result.out
