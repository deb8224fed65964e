"""A small valid fleet repository written file by file, and helpers to break it on purpose."""

from __future__ import annotations

import textwrap
from pathlib import Path


class FleetFiles:
    """A fleet repository folder that tests write, edit and point at by line."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def edit(self, rel: str, old: str, new: str) -> None:
        """Replace the one occurrence of ``old`` in ``rel``."""
        text = self.read(rel)
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {rel}"
        (self.root / rel).write_text(text.replace(old, new))

    def append(self, rel: str, text: str) -> None:
        (self.root / rel).write_text(self.read(rel) + textwrap.dedent(text).lstrip("\n"))

    def remove(self, rel: str) -> None:
        (self.root / rel).unlink()

    def line_of(self, rel: str, needle: str) -> int:
        """The 1-based line of the one line of ``rel`` that contains ``needle``."""
        lines = [i for i, line in enumerate(self.read(rel).splitlines(), 1) if needle in line]
        assert len(lines) == 1, f"{needle!r} is on lines {lines} of {rel}"
        return lines[0]


CA_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBgzCCASmgAwIBAgIUM9mtRpPhN5TXESqZwW35ckAPkF8wCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMVGVzdC1Sb290LUNBMB4XDTI2MTEyNTEzMTM0N1oXDTQ2MTEy
MDEzMTM0N1owFzEVMBMGA1UEAwwMVGVzdC1Sb290LUNBMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEWSKhsVUrA7lWoQh7decGsYxpYAUcseVLit+YAb63vVCwBkmq
kOi/BDLB+hRsevTWCSs6G2cQVweWKvrT1/tWyaNTMFEwHQYDVR0OBBYEFGzjATux
WLUuZvFyNPHIheW+coeCMB8GA1UdIwQYMBaAFGzjATuxWLUuZvFyNPHIheW+coeC
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAPOtmoqZUW4aonI2
0xsEGTyI0qVCGRl6l7EeW/kV6gJVAiAjvl4YfLbT27EL0oORTo07C2xzyMdB5Ivk
UEbOFcTZDQ==
-----END CERTIFICATE-----"""


def write_base_fleet(f: FleetFiles) -> None:
    """Three sites: a canary store and a restaurant (containerized) and a hospital
    (virtualized, three control-plane nodes and a worker pool)."""
    f.write(
        "fleet.yaml",
        """
        apiVersion: edgefleet.dev/v1
        kind: Fleet
        metadata:
          name: acme
        spec:
          rollout:
            waves:
              - name: canary
                selector:
                  labels:
                    ring: canary
              - name: everyone
            maxFailures: 10%
            soak: 10m
          backupLocations:
            - name: nas
              provider: file
              path: /srv/backups
            - name: s3-main
              provider: s3
              bucket: acme-backups
              endpoint: https://s3.example.test
              region: us-east-1
              credentialsRef: EDGEFLEET_ACME_S3
        """,
    )
    f.write(
        "profiles/store-1.0.0.yaml",
        """
        apiVersion: edgefleet.dev/v1
        kind: ClusterProfile
        metadata:
          name: store
          version: 1.0.0
          description: Single-node store cluster
        spec:
          type: full
          variables:
            - name: storeId
              format: string
              regex: "[0-9]{4}"
              required: true
            - name: replicas
              format: number
              default: 1
          layers:
            - layer: os
              pack: ubuntu
              version: 22.04.x
            - layer: k8s
              pack: k3s
              version: 1.30.x
              presets: [small]
            - layer: cni
              pack: calico
              version: 3.28.2
            - layer: csi
              pack: local-path
              version: 0.0.30
            - layer: addon
              name: store-config
              manifests:
                - name: store-config.yaml
                  content: |
                    apiVersion: v1
                    kind: ConfigMap
                    metadata:
                      name: store-config
                    data:
                      storeId: "{{ vars.storeId }}"
        """,
    )
    f.write(
        "profiles/hospital-1.0.0.yaml",
        """
        apiVersion: edgefleet.dev/v1
        kind: ClusterProfile
        metadata:
          name: hospital
          version: 1.0.0
        spec:
          type: full
          virtualized: true
          layers:
            - layer: os
              pack: ubuntu
              version: 22.04.5
            - layer: k8s
              pack: k3s
              version: 1.30.6
            - layer: cni
              pack: calico
              version: 3.28.x
            - layer: csi
              pack: local-path
              version: 0.0.30
        """,
    )
    f.write(
        "profiles/extras-1.0.0.yaml",
        """
        apiVersion: edgefleet.dev/v1
        kind: ClusterProfile
        metadata:
          name: extras
          version: 1.0.0
        spec:
          type: add-on
          layers:
            - layer: addon
              pack: monitoring
              version: 1.x
            - layer: addon
              chart:
                repo: https://charts.example.test
                name: pos-backend
                version: 2.1.0
                namespace: pos
              values:
                replicas: 2
        """,
    )
    _store(f, "store-1", "store-1-a", "bare-metal", "ring: canary", "192.168.1.0/24", "0001")
    _store(
        f,
        "restaurant-7",
        "restaurant-7-a",
        "virtual-machine",
        "brand: diner",
        "192.168.7.0/24",
        "0007",
    )
    f.write(
        "sites/hospital-1/site.yaml",
        f"""
        apiVersion: edgefleet.dev/v1
        kind: Site
        metadata:
          name: hospital-1
          labels:
            kind: hospital
        spec:
          timezone: America/Chicago
          network:
            cidrs:
              - 172.16.10.0/24
            httpProxy: http://proxy.hospital.test:3128
            httpsProxy: http://proxy.hospital.test:3128
            noProxy: .hospital.test,172.16.10.0/24
            ntpServers: [ntp.hospital.test]
            dnsServers: [172.16.10.2]
          caCerts:
            - |
{textwrap.indent(CA_PEM, " " * 14)}
          maintenanceWindows:
            - days: [sat, sun]
              start: "02:00"
              duration: 4h
        """,
    )
    for n in (1, 2, 3):
        f.write(
            f"sites/hospital-1/appliances/hospital-1-hv{n}.yaml",
            f"""
            apiVersion: edgefleet.dev/v1
            kind: Appliance
            metadata:
              name: hospital-1-hv{n}
              tags:
                name: Hypervisor {n}
            spec:
              type: bare-metal-libvirt
              arch: amd64
            """,
        )
    f.write(
        "sites/hospital-1/clusters/imaging.yaml",
        """
        apiVersion: edgefleet.dev/v1
        kind: Cluster
        metadata:
          name: imaging
        spec:
          profiles:
            - name: hospital
              version: 1.0.0
          config:
            vip: 172.16.10.50
            sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ0 ops@hospital"]
          nodePools:
            - name: control-plane
              controlPlane: true
              size: 3
              updateStrategy: contract-first
              appliances: [hospital-1-hv1, hospital-1-hv2, hospital-1-hv3]
              resources: {cpu: 4, memoryGiB: 8, rootDiskGiB: 60, cpuSet: "0-3"}
              placement:
                networkType: bridge
                networks: [br-lan]
                imageStoragePool: images
                targetStoragePool: vms
                dataStoragePool: data
            - name: workers
              size: 4
              appliances: [hospital-1-hv1, hospital-1-hv2]
              resources: {cpu: 8, memoryGiB: 32, rootDiskGiB: 100, dataDiskGiB: 200}
              placement:
                networks: [default]
                imageStoragePool: images
                targetStoragePool: vms
                dataStoragePool: data
          policies:
            osPatch:
              schedule: "0 3 * * sun"
              onBoot: true
              rebootIfRequired: true
            scans:
              configuration: "0 4 * * mon"
              penetration: "0 5 1 * *"
            backup:
              schedule: "0 1 * * *"
              location: s3-main
              prefix: imaging
              expiryHours: 336
              includeClusterResources: always
        """,
    )


def _store(
    f: FleetFiles, site: str, appliance: str, kind: str, label: str, cidr: str, store_id: str
) -> None:
    write_site(f, site, [appliance], cidr=cidr, appliance_type=kind, label=label, region="emea")
    f.write(
        f"sites/{site}/clusters/pos.yaml",
        f"""
        apiVersion: edgefleet.dev/v1
        kind: Cluster
        metadata:
          name: pos
        spec:
          profiles:
            - name: store
              version: 1.0.0
              variables:
                storeId: "{store_id}"
            - name: extras
              version: 1.0.0
          packs:
            k3s:
              values:
                maxPods: 80
          nodePools:
            - name: main
              controlPlane: true
              size: 1
              workerCapable: true
              appliances: [{appliance}]
          policies:
            backup:
              schedule: "30 2 * * *"
              location: nas
        """,
    )


def write_site(
    f: FleetFiles,
    site: str,
    appliances: list[str],
    *,
    cidr: str,
    appliance_type: str,
    label: str = "ring: canary",
    region: str | None = None,
) -> None:
    """A site of ``appliances`` (each of ``appliance_type``) on the network ``cidr``, in the
    wave ``label`` chooses; with a ``region`` variable if given."""
    variables = f"\n          variables:\n            region: {region}" if region else ""
    f.write(
        f"sites/{site}/site.yaml",
        f"""
        apiVersion: edgefleet.dev/v1
        kind: Site
        metadata:
          name: {site}
          labels:
            {label}
        spec:
          timezone: Europe/Berlin
          network:
            cidrs: [{cidr}]{variables}
        """,
    )
    for appliance in appliances:
        f.write(
            f"sites/{site}/appliances/{appliance}.yaml",
            f"""
            apiVersion: edgefleet.dev/v1
            kind: Appliance
            metadata:
              name: {appliance}
            spec:
              type: {appliance_type}
            """,
        )
