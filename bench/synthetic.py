"""Synthetic fleets for the benchmarks: N sites with a realistic mix of cluster modes.

Most sites are stores with one containerized node (on a virtual-machine or a bare-metal
appliance); one in ten is a restaurant that also runs the observability add-on profile; one in
twenty is a hospital with a virtualized cluster (three control-plane nodes and two workers on
three hypervisors). The repository is written straight into git objects with pygit2, without a
work tree.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pygit2

EXAMPLE = Path(__file__).resolve().parents[1] / "fleet-example"

FLEET = """\
apiVersion: edgefleet.dev/v1
kind: Fleet
metadata:
  name: synthetic
spec:
  rollout:
    waves:
      - name: canary
        selector:
          labels:
            ring: canary
      - name: everyone
    maxFailures: 5%
    soak: 30m
  backupLocations:
    - name: central-s3
      provider: s3
      bucket: fleet-backups
      endpoint: https://s3.example.test
      region: us-east-1
      credentialsRef: EDGEFLEET_FLEET_S3
  packRegistries: [vendor-packs]
"""

SITE = """\
apiVersion: edgefleet.dev/v1
kind: Site
metadata:
  name: {site}
  labels:
    ring: {ring}
    brand: {brand}
spec:
  timezone: {tz}
  network:
    cidrs: [192.168.{net}.0/24]
    ntpServers: [ntp.example.test]
  variables:
    storeCode: "{code}"
    posHub: https://pos-hub.example.test/{site}
    facilityCode: F{code}
    ehrEndpoint: https://ehr.example.test/{site}
"""

APPLIANCE = """\
apiVersion: edgefleet.dev/v1
kind: Appliance
metadata:
  name: {name}
  tags:
    name: {display}
spec:
  type: {type}
"""

STORE_CLUSTER = """\
apiVersion: edgefleet.dev/v1
kind: Cluster
metadata:
  name: {site}-store
spec:
  profiles:
    - name: store-full
      version: 1.2.0
      variables:
        storeNumber: "{code}"
{addon}  nodePools:
    - name: main
      controlPlane: true
      size: 1
      workerCapable: true
      appliances: [{appliance}]
  policies:
    osPatch:
      schedule: "0 3 * * sun"
    backup:
      schedule: "30 2 * * *"
      location: central-s3
"""

ADDON = """\
    - name: observability
      version: 1.0.0
      variables:
        clusterDisplayName: Restaurant {code}
"""

HOSPITAL_CLUSTER = """\
apiVersion: edgefleet.dev/v1
kind: Cluster
metadata:
  name: {site}-clinical
spec:
  profiles:
    - name: hospital-full
      version: 1.0.0
      variables:
        hl7LoadBalancerIP: 192.168.{net}.60
  config:
    vip: 192.168.{net}.50
    sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFqxKtWRPvUPBXBYTLpxUoecJsDEhWM11zcLyQ1obj ops"]
  nodePools:
    - name: control-plane
      controlPlane: true
      size: 3
      appliances: [{site}-kvm-1, {site}-kvm-2, {site}-kvm-3]
      resources: {{cpu: 4, memoryGiB: 8, rootDiskGiB: 60}}
      placement:
        networks: [br-lan]
        imageStoragePool: images
        targetStoragePool: vms
    - name: workers
      size: 2
      appliances: [{site}-kvm-1, {site}-kvm-2]
      resources: {{cpu: 8, memoryGiB: 16, rootDiskGiB: 100}}
      placement:
        networks: [br-lan]
        imageStoragePool: images
        targetStoragePool: vms
  policies:
    scans:
      configuration: "0 4 * * mon"
"""

ZONES = ("America/New_York", "America/Chicago", "America/Denver", "Europe/Berlin")


def site_files(i: int) -> dict[str, str]:
    """The files of site number ``i``."""
    site = f"site-{i:05d}"
    code = f"{i:04d}"[-4:]
    common = dict(
        site=site,
        code=code,
        ring="canary" if i % 100 == 0 else "main",
        brand="hospital" if i % 20 == 7 else "diner" if i % 10 == 3 else "grocery",
        tz=ZONES[i % len(ZONES)],
        net=i % 250,
    )
    files = {f"sites/{site}/site.yaml": SITE.format(**common)}
    if i % 20 == 7:
        for n in (1, 2, 3):
            name = f"{site}-kvm-{n}"
            files[f"sites/{site}/appliances/{name}.yaml"] = APPLIANCE.format(
                name=name, display=f"Hospital {code} hypervisor {n}", type="bare-metal-libvirt"
            )
        files[f"sites/{site}/clusters/{site}-clinical.yaml"] = HOSPITAL_CLUSTER.format(**common)
        return files
    appliance = f"{site}-edge"
    kind = "bare-metal" if i % 2 else "virtual-machine"
    files[f"sites/{site}/appliances/{appliance}.yaml"] = APPLIANCE.format(
        name=appliance, display=f"Store {code} back office", type=kind
    )
    addon = ADDON.format(code=code) if i % 10 == 3 else ""
    files[f"sites/{site}/clusters/{site}-store.yaml"] = STORE_CLUSTER.format(
        addon=addon, appliance=appliance, **common
    )
    return files


def fleet_files(sites: int) -> dict[str, str]:
    files = {"fleet.yaml": FLEET}
    for path in sorted((EXAMPLE / "profiles").glob("*.yaml")):
        files[f"profiles/{path.name}"] = path.read_text()
    for path in sorted([*(EXAMPLE / "packs").rglob("*"), *(EXAMPLE / "vendor-packs").rglob("*")]):
        if path.is_file():
            files[str(path.relative_to(EXAMPLE))] = path.read_text()
    for i in range(sites):
        files.update(site_files(i))
    return files


def write_tree(repo: pygit2.Repository, files: dict[str, str]) -> pygit2.Oid:
    """Nested git trees for ``files`` (path → text)."""
    folders: dict[str, dict[str, tuple[pygit2.Oid, int]]] = {"": {}}
    for path in sorted(files):
        parent = ""
        for part in path.split("/")[:-1]:
            child = f"{parent}/{part}" if parent else part
            folders.setdefault(child, {})
            parent = child
        blob = repo.create_blob(files[path].encode())
        folders[parent][path.rsplit("/", 1)[-1]] = (blob, pygit2.enums.FileMode.BLOB)
    for folder in sorted(folders, key=lambda f: -f.count("/") if f else 1):
        if not folder:
            continue
        builder = repo.TreeBuilder()
        for name, (oid, mode) in sorted(folders[folder].items()):
            builder.insert(name, oid, mode)
        parent, _, name = folder.rpartition("/")
        folders[parent][name] = (builder.write(), pygit2.enums.FileMode.TREE)
    root = repo.TreeBuilder()
    for name, (oid, mode) in sorted(folders[""].items()):
        root.insert(name, oid, mode)
    return root.write()


def commit(repo: pygit2.Repository, files: dict[str, str], message: str) -> str:
    signature = pygit2.Signature("bench", "bench@example.test", 1_700_000_000, 0)
    parents = [] if repo.head_is_unborn else [repo.head.target]
    tree = write_tree(repo, files)
    return str(repo.create_commit("refs/heads/main", signature, signature, message, tree, parents))


def create(path: Path, sites: int) -> pygit2.Repository:
    repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
    commit(repo, fleet_files(sites), f"{sites} sites")
    return repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sites", type=int)
    parser.add_argument("path", type=Path)
    args = parser.parse_args()
    create(args.path, args.sites)
    print(f"wrote a {args.sites}-site fleet to {args.path}")


if __name__ == "__main__":
    main()
