"""A virtualized cluster spanning appliances, end to end on the real libvirtd: one agent
process per appliance (three, then two), a real reconciler and real git.

Each node is a virtual machine that boots the tiny guest (tests/libvirt/guest.py: the host's
kernel and a busybox initramfs) instead of a node image, so no k3s runs. Inside each node
the test runs what a real node runs from its seed CD:
- the vendor data, which installs the node's join (the k3s drop-in and the token);
- the os pack's k3s bootstrap, which reads that join. Here a stand-in for the k3s installer
  (no download is possible) prints what it was asked to install.
Where the k3s API would answer on the VIP's port 6443, a busybox ``httpd`` stands in for it.
The VIP is put on a server's interface by the test, standing in for kube-vip. The virtual
machines of all appliances share one libvirt network, as a site's appliances share its LAN.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt
import libvirt_qemu
import pytest
from ruamel.yaml import YAML

from agent.clocks import SystemClock
from agent.config import DirectBootConfig
from agent.drivers.libvirt.guests import GuestAgent
from agent.drivers.libvirt.observing import agent_domains
from agent.drivers.libvirt.volumes import agent_volumes
from tests.support.fleet import write_site
from tests.support.gitops import Loop, parse_join, token_revoked, wait_for
from tests.support.libvirtd import Guest

CIDR = "172.16.77.0/24"
HYPERVISOR = "bare-metal-libvirt"
VIP = "172.16.77.50"
API = f"https://{VIP}:6443"
KEY_1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ0 ops@clinic"
KEY_2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHK2 ops@clinic"
SEED = "mkdir -p /tmp/seed && mount -t iso9660 -o ro /dev/sr0 /tmp/seed"
JOIN = "/etc/rancher/k3s/config.yaml.d/10-join.yaml"
BOOTSTRAP = "/usr/local/sbin/edgefleet-k3s-bootstrap"
# the k3s installer the bootstrap fetches, stood in for: it prints what it was asked
FAKE_CURL = """#!/bin/sh
case "$*" in
  *get.k3s.io*) echo 'echo "install $* url=${K3S_URL:-} token-file=${K3S_TOKEN_FILE:-}"' ;;
  *) exit 7 ;;
esac
"""


class Vms:
    """The nodes of one cluster as virtual machines on the session's libvirtd, looked at
    and into (through each guest's agent)."""

    def __init__(self, connection: Any, cluster: str, appliances: list[str]) -> None:
        self.connection = connection
        self.cluster = cluster
        self.appliances = appliances

    def running(self) -> dict[str, str]:
        """node -> domain, for the cluster's running domains."""
        found = {}
        for appliance in self.appliances:
            for domain in agent_domains(self.connection, appliance=appliance):
                if domain.metadata.cluster == self.cluster and domain.state == "running":
                    found[domain.metadata.node] = domain.name
        return found

    def answering(self, count: int) -> dict[str, str] | None:
        """node -> domain once ``count`` domains run and every guest agent answers."""
        found = self.running()
        if len(found) != count:
            return None
        for domain in found.values():
            try:
                # a short ping: a guest still booting would hold the agent's 10 s timeout
                libvirt_qemu.qemuAgentCommand(
                    self.connection.lookupByName(domain), '{"execute": "guest-ping"}', 2, 0
                )
            except libvirt.libvirtError:
                return None  # not answering yet, or replaced while we looked
        return found

    def seen(self, before: dict[str, str]) -> str:
        """What a test waiting for new nodes sees: each running domain, whether it replaced
        the node's domain in ``before`` and whether its guest answers."""
        lines = []
        for appliance in self.appliances:
            for domain in agent_domains(self.connection, appliance=appliance):
                if domain.metadata.cluster != self.cluster:
                    continue
                node = domain.metadata.node
                new = "new" if before.get(node) != domain.name else "not replaced"
                try:
                    libvirt_qemu.qemuAgentCommand(
                        self.connection.lookupByName(domain.name), '{"execute": "guest-ping"}', 2, 0
                    )
                    answer = "answers"
                except libvirt.libvirtError as error:
                    answer = f"silent ({error.get_error_message()})"
                lines.append(f"{appliance}: {node} {domain.name} {domain.state}, {new}, {answer}")
        return "\n".join(lines)

    def sh(self, domain: str, script: str) -> tuple[int, str]:
        guest = GuestAgent(self.connection.lookupByName(domain), clock=SystemClock())
        done = guest.execute(["sh", "-c", script], timeout=60)
        return done.code, (done.stdout + done.stderr).decode(errors="replace")

    def ok(self, domain: str, script: str) -> str:
        code, out = self.sh(domain, script)
        assert code == 0, (domain, script, out)
        return out

    def volumes(self, appliance: str) -> list[str]:
        return [str(v.name) for v in agent_volumes(self.connection, appliance=appliance)]

    def remove_everything(self) -> None:
        for appliance in self.appliances:
            for domain in agent_domains(self.connection, appliance=appliance):
                try:
                    handle = self.connection.lookupByName(domain.name)
                    if handle.isActive():
                        handle.destroy()
                    handle.undefine()
                except libvirt.libvirtError:
                    continue
            for volume in agent_volumes(self.connection, appliance=appliance):
                try:
                    volume.handle.delete(0)
                except libvirt.libvirtError:
                    continue

    # -- inside a node --------------------------------------------------------------------

    def join_of(self, domain: str) -> dict[str, str]:
        """The node's join as its seed CD carries it."""
        text = self.ok(domain, f"{SEED} && cat /tmp/seed/join/10-join.yaml; umount /tmp/seed")
        return parse_join(text)

    def bootstrap(self, domain: str) -> str:
        """Run the node's vendor data, then its k3s bootstrap (from its user data), as a
        booting node does; what the stand-in installer was asked to install."""
        user_data = self.ok(domain, f"{SEED} && cat /tmp/seed/user-data; umount /tmp/seed")
        files = YAML(typ="safe").load(user_data)["write_files"]
        (script,) = [f["content"] for f in files if f["path"] == BOOTSTRAP]
        # a control plane's vendor data goes on to install systemd units this guest has not:
        # the join it installed first is what counts here
        _, vendor = self.sh(domain, f"{SEED} && sh -x /tmp/seed/vendor-data; umount /tmp/seed")
        code, modes = self.sh(domain, f"stat -c %a {JOIN} /etc/edgefleet/cluster-token")
        assert (code, modes.split()) == (0, ["600", "600"]), vendor
        return self.ok(
            domain,
            "mkdir -p /tmp/fake && cat > /tmp/fake/curl <<'EDGEFLEET_EOF'\n"
            f"{FAKE_CURL}EDGEFLEET_EOF\n"
            "chmod 0755 /tmp/fake/curl\n"
            "cat > /tmp/bootstrap <<'EDGEFLEET_EOF'\n"
            f"{script}EDGEFLEET_EOF\n"
            "PATH=/tmp/fake:$PATH sh /tmp/bootstrap",
        ).strip()

    def network(self, domain: str, address: str) -> None:
        self.ok(
            domain,
            f"ip link set lo up && ip link set eth0 up && ip addr add {address}/24 dev eth0",
        )

    def hold_vip(self, domain: str) -> None:
        """Stand in for kube-vip (the VIP on the server's interface) and for the k3s API
        (a listener on the VIP's port 6443)."""
        self.ok(
            domain,
            f"ip addr add {VIP}/32 dev eth0 && mkdir -p /tmp/api && "
            f"httpd -p {VIP}:6443 -h /tmp/api </dev/null >/dev/null 2>&1",
        )

    def reaches_api(self, domain: str) -> bool:
        code, _ = self.sh(domain, f"echo | nc -w 3 {VIP} 6443")
        return code == 0

    def write_marker(self, domain: str, text: str) -> None:
        self.ok(domain, f"printf '{text}' | dd of=/dev/vdb bs=512 count=1 conv=sync,fsync && sync")

    def marker(self, domain: str, length: int) -> str:
        return self.ok(domain, f"dd if=/dev/vdb bs={length} count=1 2>/dev/null")


@pytest.fixture
def vms(libvirt_host: Any) -> Iterator[list[Vms]]:
    """The clusters a test makes; what is left of them goes when the test's agents are gone
    (this fixture is set up before ``loop``, so it ends after it)."""
    made: list[Vms] = []
    try:
        yield made
    finally:
        for found in made:
            found.remove_everything()


def start_vm_agents(loop: Loop, host: Any, guest: Guest, addresses: dict[str, str]) -> None:
    assert guest.boot is not None
    boot = DirectBootConfig(
        kernel=guest.boot.kernel, initrd=guest.boot.initrd, cmdline=guest.boot.cmdline
    )
    for appliance, address in addresses.items():
        config = loop.agent_config(appliance, libvirt_uri=host.uri).model_copy(
            update={
                "ip": address,
                "libvirtDirectBoot": boot,
                "libvirtDomainType": guest.domain_type,
            }
        )
        loop.start_agent(appliance, config=config)


def write_profile(loop: Loop) -> None:
    loop.fleet.write(
        "profiles/ward-1.0.0.yaml",
        """
        apiVersion: edgefleet.dev/v1
        kind: ClusterProfile
        metadata:
          name: ward
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
              version: 1.30.4
            - layer: cni
              pack: calico
              version: 3.28.2
            - layer: csi
              pack: local-path
              version: 0.0.30
        """,
    )


def pool(host: Any, name: str, appliances: list[str], *, size: int, data: bool, cp: bool) -> str:
    disk = ", dataDiskGiB: 1" if data else ""
    data_pool = f", dataStoragePool: {host.data}" if data else ""
    return f"""
            - name: {name}
              controlPlane: {str(cp).lower()}
              size: {size}
              appliances: [{", ".join(appliances)}]
              resources: {{cpu: 1, memoryGiB: 1, rootDiskGiB: 1{disk}}}
              placement: {{networkType: default, networks: [{host.network}], imageStoragePool: {host.images}, targetStoragePool: {host.vms}{data_pool}}}"""  # noqa: E501


def cluster_yaml(host: Any, name: str, pools: str) -> str:
    return f"""
        apiVersion: edgefleet.dev/v1
        kind: Cluster
        metadata:
          name: {name}
        spec:
          profiles:
            - name: ward
              version: 1.0.0
          packs:
            ubuntu:
              values:
                vmImage: {host.image}
            k3s:
              values:
                kubeVip:
                  interface: eth0
          config:
            vip: {VIP}
            sshKeys: ["{KEY_1}"]
          nodePools:{pools}
        """


def answered(
    vms: Vms, check: Callable[[], dict[str, str] | None | bool], before: dict[str, str], what: str
) -> dict[str, str]:
    """Wait for ``check`` to give the nodes; if it never does, fail with what was seen."""
    try:
        found = wait_for(check, 240, what)
    except AssertionError as error:
        raise AssertionError(f"{error}; the cluster's domains:\n{vms.seen(before)}") from None
    assert isinstance(found, dict)
    return found


def changed(vms: Vms, before: dict[str, str], what: str) -> dict[str, str]:
    return answered(
        vms,
        lambda: (
            (now := vms.answering(len(before))) is not None
            and now.keys() == before.keys()
            and all(now[n] != before[n] for n in before)
            and now
        ),
        before,
        what,
    )


CLINIC = ["clinic-5-hv1", "clinic-5-hv2", "clinic-5-hv3"]
WORKER = "ward-workers-1"


def test_three_appliances_form_one_cluster_whose_nodes_keep_their_data(
    vms: list[Vms], loop: Loop, libvirt_host: Any, guest: Guest
) -> None:
    host = libvirt_host
    write_profile(loop)
    pools = pool(host, "control-plane", CLINIC, size=3, data=False, cp=True) + pool(
        host, "workers", ["clinic-5-hv2"], size=1, data=True, cp=False
    )
    write_site(loop.fleet, "clinic-5", CLINIC, cidr=CIDR, appliance_type=HYPERVISOR)
    loop.fleet.write("sites/clinic-5/clusters/ward.yaml", cluster_yaml(host, "ward", pools))
    loop.commit("clinic-5: a virtualized cluster over three appliances")
    ward = Vms(host.connection, "ward", CLINIC)
    vms.append(ward)
    start_vm_agents(loop, host, guest, {a: f"127.0.0.{31 + i}" for i, a in enumerate(CLINIC)})

    first = answered(ward, lambda: ward.answering(4), {}, "four machines whose guests answer")
    servers = [f"ward-control-plane-{i}" for i in (1, 2, 3)]
    assert sorted(first) == [*servers, WORKER]
    on = {
        d.metadata.node: d.metadata.appliance
        for a in CLINIC
        for d in agent_domains(host.connection, appliance=a)
    }
    assert [on[s] for s in servers] == CLINIC  # one server on each appliance

    # every node has the cluster's one token; the first server starts the cluster, every other
    # node joins it at the VIP
    joins = {node: ward.join_of(domain) for node, domain in first.items()}
    (token,) = {j["token"] for j in joins.values()}
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert joins[servers[0]]["cluster-init"] == "true" and "server" not in joins[servers[0]]
    for node in (*servers[1:], WORKER):
        assert joins[node]["server"] == API and "cluster-init" not in joins[node], node

    # what the nodes' own bootstrap makes of it: the first server starts the cluster (k3s
    # reads cluster-init from the drop-in), the others join at the VIP
    installs = {node: ward.bootstrap(domain) for node, domain in first.items()}
    tokens = "token-file=/etc/edgefleet/cluster-token"
    assert installs[servers[0]] == f"install server url= {tokens}"
    for node in servers[1:]:
        assert installs[node] == f"install server url={API} {tokens}", node
    assert installs[WORKER] == f"install agent url={API} {tokens}"

    # the control plane's manifests carry kube-vip, holding the VIP on eth0
    kube_vip = ward.ok(first[servers[0]], "cat /var/lib/rancher/k3s/server/manifests/*kube-vip*")
    assert f'value: "{VIP}"' in kube_vip and 'value: "eth0"' in kube_vip

    # the VIP answers nothing until a server holds it; then every node reaches the API there
    for index, node in enumerate(sorted(first)):  # the servers .11 to .13, the worker .14
        ward.network(first[node], f"172.16.77.{11 + index}")
    assert not ward.reaches_api(first[WORKER])
    ward.hold_vip(first[servers[0]])
    for node, domain in first.items():
        assert ward.reaches_api(domain), node

    # a marker on the worker's data disk survives a config change ...
    ward.write_marker(first[WORKER], "kept-1\n")
    shop = "sites/clinic-5/clusters/ward.yaml"
    loop.fleet.edit(
        shop, "interface: eth0\n", "interface: eth0\n        kubeletArgs: [max-pods=90]\n"
    )
    loop.commit("clinic-5: more pods")
    second = changed(ward, first, "every node restarted with the new config")
    assert ward.marker(second[WORKER], 7) == "kept-1\n"
    # ... and the first server, made again after the cluster formed, joins at the VIP
    # instead of starting a second cluster; the VIP now on another server answers it
    again = ward.join_of(second[servers[0]])
    assert again["server"] == API and "cluster-init" not in again
    assert again["token"] == token
    assert ward.bootstrap(second[servers[0]]) == f"install server url={API} {tokens}"
    ward.network(second[servers[0]], "172.16.77.11")
    ward.network(second[servers[1]], "172.16.77.12")
    ward.hold_vip(second[servers[1]])
    assert ward.reaches_api(second[servers[0]])

    # ... a k3s version change ...
    loop.fleet.edit("profiles/ward-1.0.0.yaml", "version: 1.30.4", "version: 1.30.6")
    loop.commit("ward: k3s 1.30.6")
    third = changed(ward, second, "every node restarted on k3s 1.30.6")
    assert ward.marker(third[WORKER], 7) == "kept-1\n"

    # ... and an SSH key change
    loop.fleet.edit(shop, KEY_1, KEY_2)
    loop.commit("clinic-5: rotate the ops key")
    fourth = changed(ward, third, "every node restarted with the new key")
    assert ward.marker(fourth[WORKER], 7) == "kept-1\n"
    assert {ward.join_of(d)["token"] for d in fourth.values()} == {token}


def test_an_appliance_removed_from_git_loses_its_nodes_and_its_token(
    vms: list[Vms], loop: Loop, libvirt_host: Any, guest: Guest
) -> None:
    host = libvirt_host
    lab = ["lab-2-a", "lab-2-b"]
    write_profile(loop)
    pools = pool(host, "main", ["lab-2-a"], size=1, data=False, cp=True)
    workers = pool(host, "workers", ["lab-2-b"], size=1, data=True, cp=False)
    write_site(loop.fleet, "lab-2", lab, cidr=CIDR, appliance_type=HYPERVISOR)
    loop.fleet.write("sites/lab-2/clusters/lab.yaml", cluster_yaml(host, "lab", pools + workers))
    loop.commit("lab-2: a server and a worker on two appliances")
    cluster = Vms(host.connection, "lab", lab)
    vms.append(cluster)
    start_vm_agents(loop, host, guest, {"lab-2-a": "127.0.0.41", "lab-2-b": "127.0.0.42"})

    nodes = wait_for(lambda: cluster.answering(2), 240, "the server and the worker")
    assert isinstance(nodes, dict)
    server, worker = cluster.join_of(nodes["lab-main-1"]), cluster.join_of(nodes["lab-workers-1"])
    assert server["token"] == worker["token"] and worker["server"] == API
    cluster.write_marker(nodes["lab-workers-1"], "kept-2\n")
    assert [v for v in cluster.volumes("lab-2-b") if v.endswith(".data.qcow2")]

    # the worker's appliance (and its pool) leave Git: its node and data disk go, then its
    # token stops working and it is listed as decommissioned
    agent_token = Path(loop.work / "lab-2-b" / "token").read_text().strip()
    loop.fleet.write("sites/lab-2/clusters/lab.yaml", cluster_yaml(host, "lab", pools))
    loop.fleet.remove("sites/lab-2/appliances/lab-2-b.yaml")
    loop.commit("lab-2: the second appliance leaves")
    wait_for(lambda: "lab-workers-1" not in cluster.running(), 120, "the worker to be removed")
    wait_for(lambda: not cluster.volumes("lab-2-b"), 60, "the worker's disks to be removed")

    wait_for(
        lambda: token_revoked(loop, agent_token),
        60,
        "the removed appliance's token to stop working",
    )
    listed = loop.fleet_status()["decommissioned"]
    assert [d["appliance"] for d in listed] == ["lab-2-b"]  # type: ignore[index]
    assert cluster.running().keys() == {"lab-main-1"}  # the server keeps running
