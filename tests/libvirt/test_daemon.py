"""On a real libvirtd with the qemu driver, checked from outside with ``virsh``: the domains,
volumes and seeds the driver makes, manifests changed on a running node by a new seed in its
CD-ROM, a cluster deleted with every volume, and a pass killed with ``kill -9`` finished by
the next."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.apply.inventory import Inventory
from agent.apply.passes import EventKind, Phase
from agent.contract import ClusterState, ManifestFile
from agent.drivers.libvirt.seeds import read_seed
from tests.libvirt.harness import LibvirtAgent, virsh
from tests.libvirt.states import manifests, placement, resources, state, vm_cluster
from tests.support.hosts import RealHost
from tests.support.libvirtd import Guest

REPO_ROOT = Path(__file__).resolve().parents[2]


def real_cluster(
    agent: LibvirtAgent,
    host: RealHost,
    name: str,
    *,
    workers: int = 1,
    files: list[ManifestFile] | None = None,
    user_data: str = "",
) -> ClusterState:
    pools = {"imageStoragePool": host.images, "targetStoragePool": host.vms}
    return vm_cluster(
        name,
        appliance=agent.appliance,
        workers=workers,
        files=files,
        user_data=user_data,
        image=host.image,
        control=(resources(cpuSet="0"), placement(networks=[host.network], **pools)),
        worker=(
            resources(dataDiskGiB=1),
            placement(
                networkType="bridge", networks=[host.bridge], dataStoragePool=host.data, **pools
            ),
        ),
    )


def ours(listing: str, agent: LibvirtAgent) -> list[str]:
    return sorted(line.split()[0] for line in listing.splitlines() if agent.appliance in line)


def test_nodes_seen_with_virsh_then_new_manifests_then_deleted(
    real_agent: LibvirtAgent, real_host: RealHost, tmp_path: Path
) -> None:
    agent, host, uri = real_agent, real_host, real_agent.uri
    name = agent.name("pos")
    desired = state(agent.appliance, real_cluster(agent, host, name))

    result = agent.apply(desired)

    assert result.ok, result
    control = agent.node_domain(f"{name}-main-1").name
    worker = agent.node_domain(f"{name}-workers-1").name
    running = virsh(uri, "list", "--name").split()
    assert control in running and worker in running
    root = agent.disk_of(f"{name}-main-1", "root")
    vms = ours(virsh(uri, "vol-list", "--pool", host.vms), agent)
    assert root in vms and agent.disk_of(f"{name}-workers-1", "root") in vms
    assert root in virsh(uri, "domblklist", control)
    assert [v for v in vms if ".seed-" in v and control in v]
    data = ours(virsh(uri, "vol-list", "--pool", host.data), agent)
    assert data == [agent.disk_of(f"{name}-workers-1", "data")]
    assert "4.00 GiB" in virsh(uri, "vol-info", "--pool", host.vms, root)  # grown past the image
    xml = virsh(uri, "dumpxml", control)
    assert "cpuset='0'" in xml and f"<source network='{host.network}'" in xml
    assert f"<edgefleet:cluster>{name}</edgefleet:cluster>" in xml
    assert f"<source bridge='{host.bridge}'/>" in virsh(uri, "dumpxml", worker)
    seed = agent.node_domain(f"{name}-main-1").metadata.seed.volume
    virsh(uri, "vol-download", "--pool", host.vms, seed, str(tmp_path / "seed.iso"))
    on_disk = read_seed((tmp_path / "seed.iso").read_bytes())
    assert on_disk.user_data == desired.clusters[0].nodes[1].userData
    assert sorted(on_disk.manifests) == ["01-demo-a.yaml", "02-demo-b.yaml"]

    # new manifests reach the running node as a new seed in its CD-ROM
    files = manifests("a.yaml", "c.yaml")
    changed = agent.apply(state(agent.appliance, real_cluster(agent, host, name, files=files)))

    assert changed.ok, changed
    assert [t.title for t in changed.cluster(name).tasks] == [
        f"write 1 manifests to {name}-main-1",
        f"remove 1 stale manifests from {name}-main-1",
    ]
    assert agent.node_domain(f"{name}-main-1").name == control  # the node stays
    new_seed = agent.node_domain(f"{name}-main-1").metadata.seed.volume
    assert new_seed != seed
    assert new_seed in virsh(uri, "domblklist", control)
    seeds = [v for v in ours(virsh(uri, "vol-list", "--pool", host.vms), agent) if ".seed-" in v]
    assert seed not in seeds and new_seed in seeds
    virsh(uri, "vol-download", "--pool", host.vms, new_seed, str(tmp_path / "new.iso"))
    assert sorted(read_seed((tmp_path / "new.iso").read_bytes()).manifests) == [
        "01-demo-a.yaml",
        "02-demo-c.yaml",
    ]
    again = agent.apply(state(agent.appliance, real_cluster(agent, host, name, files=files)))
    assert again.cluster(name).tasks == ()

    # deleting the cluster leaves no domain and no volume
    deleted = agent.apply(state(agent.appliance))

    assert deleted.cluster(name).phase is Phase.DELETED
    assert ours(virsh(uri, "list", "--all", "--name"), agent) == []
    for pool in (host.vms, host.data):
        assert ours(virsh(uri, "vol-list", "--pool", pool), agent) == []


def test_a_pass_killed_while_creating_a_node_is_finished_by_the_next(
    real_agent: LibvirtAgent, real_host: RealHost, guest: Guest, tmp_path: Path
) -> None:
    agent, host = real_agent, real_host
    name = agent.name("pos")
    desired = state(agent.appliance, real_cluster(agent, host, name, workers=2))
    (tmp_path / "state.json").write_bytes(desired.canonical_json())
    marker = tmp_path / "paused"
    with open(tmp_path / "interrupted.log", "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.libvirt.interrupted",
                f"--state={tmp_path / 'state.json'}",
                f"--data-dir={agent.data_dir}",
                f"--uri={agent.uri}",
                f"--domain-type={guest.domain_type}",
                f"--pause-at=create node {name}-workers-2",
                "--stage=created",
                f"--marker={marker}",
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "interrupted.log").read_text(errors="replace"))
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    half_made = [d.metadata.node for d in agent.domains() if d.state == "shutoff"]
    assert half_made == [f"{name}-workers-2"]

    result = agent.apply(desired)

    assert result.ok, result
    assert [e.kind for e in result.recovered] == [EventKind.RECOVERED]
    nodes = [d.metadata.node for d in agent.domains(name)]
    assert len(nodes) == len(set(nodes)) == 3
    assert {d.state for d in agent.domains(name)} == {"running"}
    used = {volume for domain in agent.domain_names() for volume in agent.volumes_of(domain)}
    assert set(agent.volume_names()) == used, "nothing half made is left behind"
    with Inventory.open(agent.data_dir) as inventory:
        assert inventory.open_steps() == []
