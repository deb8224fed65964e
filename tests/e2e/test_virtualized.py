"""A virtualized site through the whole loop: the hospital's cluster (three control-plane
nodes and workers on three hypervisor appliances) as virtual machines on a real libvirtd,
from a commit to running domains and back to nothing when its file is deleted."""

from __future__ import annotations

from typing import Any

import libvirt

from tests.support.gitops import Loop, wait_for

CLUSTER = "sites/hospital-1/clusters/imaging.yaml"


def fit_to_this_machine(loop: Loop, host: Any) -> None:
    """The repository change an operator makes for a hospital: its pools and networks here,
    small virtual machines, and the image this libvirt holds."""
    text = loop.fleet.read(CLUSTER)
    image = f"  packs:\n    ubuntu: {{values: {{vmImage: {host.image}}}}}\n"
    for old, new in (
        ("networkType: bridge", "networkType: default"),
        ("networks: [br-lan]", f"networks: [{host.network}]"),
        ("networks: [default]", f"networks: [{host.network}]"),
        ("imageStoragePool: images", f"imageStoragePool: {host.images}"),
        ("targetStoragePool: vms", f"targetStoragePool: {host.vms}"),
        ("dataStoragePool: data", f"dataStoragePool: {host.data}"),
        ("{cpu: 4, memoryGiB: 8, rootDiskGiB: 60, cpuSet: \"0-3\"}",
         "{cpu: 1, memoryGiB: 1, rootDiskGiB: 1, cpuSet: \"0\"}"),
        ("{cpu: 8, memoryGiB: 32, rootDiskGiB: 100, dataDiskGiB: 200}",
         "{cpu: 1, memoryGiB: 1, rootDiskGiB: 1, dataDiskGiB: 1}"),
        ("  config:\n", f"{image}  config:\n"),
    ):  # fmt: skip
        assert old in text, old
        text = text.replace(old, new)
    loop.fleet.write(CLUSTER, text)
    # no maintenance window: the deletion below need not wait for Saturday night
    loop.fleet.edit(
        "sites/hospital-1/site.yaml",
        '  maintenanceWindows:\n    - days: [sat, sun]\n      start: "02:00"\n      duration: 4h\n',
        "",
    )
    loop.commit("hospital-1 on this machine's libvirt")


def domains(host: Any) -> dict[str, int]:
    """The imaging cluster's domains on the daemon, by name, with their state."""
    connection = libvirt.open(host.uri)
    found = {}
    try:
        for domain in connection.listAllDomains(0):
            try:
                if domain.name().startswith("imaging-"):
                    found[domain.name()] = domain.state()[0]
            except libvirt.libvirtError:
                continue  # removed while we looked
    finally:
        connection.close()
    return found


def volumes(host: Any) -> list[str]:
    connection = libvirt.open(host.uri)
    try:
        return sorted(
            v.name()
            for pool in (host.vms, host.data)
            for v in connection.storagePoolLookupByName(pool).listAllVolumes(0)
        )
    finally:
        connection.close()


def test_virtualized_site(loop: Loop, libvirt_host: Any) -> None:
    host = libvirt_host
    fit_to_this_machine(loop, host)
    head = loop.git("rev-parse", "HEAD")
    wait_for(
        lambda: (loop.fleet_status()["revision"] or {}).get("sha") == head,  # type: ignore[union-attr]
        30,
        "the fitted revision",
    )
    # agents start only now: the hospital was never served the unfitted revision
    loop.start_agent("store-1-a")  # the canary: the hospital's wave opens after it
    for n in (1, 2, 3):
        loop.start_agent(f"hospital-1-hv{n}", libvirt_uri=host.uri)

    running = wait_for(
        lambda: (found := domains(host)) and len(found) == 7 and all(
            s == libvirt.VIR_DOMAIN_RUNNING for s in found.values()) and found,
        120, "seven running domains of the hospital's cluster",
    )  # fmt: skip
    nodes = sorted(name.rsplit("-", 1)[0] for name in running)
    assert nodes == [f"imaging-control-plane-{i}" for i in (1, 2, 3)] + [
        f"imaging-workers-{i}" for i in (1, 2, 3, 4)
    ]
    assert any(".data." in v for v in volumes(host))  # the workers' data disks

    def reported_running() -> bool:
        site = loop.site_status("hospital-1")
        return [(c["name"], c["phase"]) for c in site["clusters"]] == [("imaging", "Running")]  # type: ignore[index, union-attr]

    wait_for(reported_running, 60, "the hospital to report its cluster running")

    loop.fleet.remove(CLUSTER)
    loop.commit("hospital-1's cluster is retired")
    wait_for(lambda: not domains(host) and not volumes(host), 120,
             "the hospital's domains and volumes to be removed")  # fmt: skip
