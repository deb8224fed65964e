"""A containerized cluster spanning four appliances, end to end: one agent process per
appliance (each with its own address on the loopback network, 127.0.0.11-14), all on the
session's Docker engine, a real reconciler and real git. The stand-in node image runs no
k3s: where a k3s API would answer on 6443, a busybox ``httpd`` listener stands in for it,
started by the test inside the server's node container (host networking, at its
appliance's address)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.fleet import write_site
from tests.support.gitops import Loop, parse_join, plan_json, token_revoked, wait_for

SITE = "mall-9"
SERVERS = {"mall-9-a": "127.0.0.11", "mall-9-b": "127.0.0.12", "mall-9-c": "127.0.0.13"}
WORKER, WORKER_IP = "mall-9-d", "127.0.0.14"
ADDRESSES = {**SERVERS, WORKER: WORKER_IP}
NODES = {
    "mall-9-a": "shop-main-1",
    "mall-9-b": "shop-main-2",
    "mall-9-c": "shop-main-3",
    WORKER: "shop-workers-1",
}
DATA = "/var/lib/rancher/k3s"
JOIN = "/etc/rancher/k3s/config.yaml.d/10-join.yaml"
KEY_1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ0 ops@mall"
KEY_2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHK2 ops@mall"


def write_mall(loop: Loop) -> None:
    f = loop.fleet
    f.write(
        "profiles/mall-1.0.0.yaml",
        """
        apiVersion: edgefleet.dev/v1
        kind: ClusterProfile
        metadata:
          name: mall
          version: 1.0.0
        spec:
          type: full
          layers:
            - layer: os
              pack: ubuntu
              version: 22.04.x
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
    write_site(f, SITE, list(ADDRESSES), cidr="192.168.9.0/24", appliance_type="bare-metal")
    f.write(
        f"sites/{SITE}/clusters/shop.yaml",
        f"""
        apiVersion: edgefleet.dev/v1
        kind: Cluster
        metadata:
          name: shop
        spec:
          profiles:
            - name: mall
              version: 1.0.0
          packs:
            k3s:
              values:
                maxPods: 80
                nodeImage: {loop.image}
          config:
            sshKeys: ["{KEY_1}"]
          nodePools:
            - name: main
              controlPlane: true
              size: 3
              appliances: [mall-9-a, mall-9-b, mall-9-c]
            - name: workers
              size: 1
              appliances: [{WORKER}]
        """,
    )
    loop.commit("mall-9: a cluster over four appliances")


def start_agents(loop: Loop) -> None:
    for appliance, address in ADDRESSES.items():
        config = loop.agent_config(appliance).model_copy(update={"ip": address})
        loop.start_agent(appliance, config=config)


def exec_in(loop: Loop, container: str, command: str) -> tuple[int, str]:
    found = loop.client.containers.get(container).exec_run(["sh", "-c", command])
    return found.exit_code, found.output.decode(errors="replace")


def join_of(loop: Loop, container: str) -> dict[str, str]:
    code, text = exec_in(loop, container, f"cat {JOIN}")
    assert code == 0, text
    return parse_join(text)


def environment(loop: Loop, container: str) -> dict[str, str]:
    env = loop.client.containers.get(container).attrs["Config"]["Env"]
    return dict(item.split("=", 1) for item in env)


def reaches(loop: Loop, container: str, url: str) -> bool:
    host, port = re.fullmatch(r"https://([0-9.]+):(\d+)", url).groups()  # type: ignore[union-attr]
    code, _ = exec_in(loop, container, f"echo | nc -w 3 {host} {port}")
    return code == 0


def stand_in_api(loop: Loop, container: str, address: str) -> None:
    """A listener where the k3s API of the server in ``container`` would answer."""
    code, text = exec_in(
        loop, container, f"mkdir -p /tmp/api && httpd -p {address}:6443 -h /tmp/api"
    )
    assert code == 0, text


def running(loop: Loop) -> dict[str, str]:
    """appliance -> container of its one node (when running)."""
    found = {}
    for appliance, node in NODES.items():
        containers = loop.containers(appliance)
        if node in containers:
            found[appliance] = containers[node]
    return found


def changed_everywhere(loop: Loop, before: dict[str, str], what: str) -> dict[str, str]:
    return wait_for(  # type: ignore[return-value]
        lambda: (
            (now := running(loop)).keys() == before.keys()
            and all(now[a] != before[a] for a in before)
            and now
        ),
        240,
        what,
    )


def marker(loop: Loop, container: str) -> str:
    code, text = exec_in(loop, container, f"cat {DATA}/marker")
    return text.strip() if code == 0 else ""


def test_a_cluster_over_four_appliances_joins_keeps_its_data_and_decommissions(
    loop: Loop,
) -> None:
    write_mall(loop)
    start_agents(loop)
    first = wait_for(lambda: len(found := running(loop)) == 4 and found, 120, "the four nodes")
    assert isinstance(first, dict)

    # every node has the cluster's one token; the first server starts the cluster, every
    # other node joins it at the first server's appliance address
    joins = {a: join_of(loop, c) for a, c in first.items()}
    tokens = {j["token"] for j in joins.values()}
    assert len(tokens) == 1
    (token,) = tokens
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert joins["mall-9-a"]["cluster-init"] == "true" and "server" not in joins["mall-9-a"]
    server = "https://127.0.0.11:6443"
    for appliance in ("mall-9-b", "mall-9-c", WORKER):
        assert joins[appliance]["server"] == server
        assert joins[appliance]["node-ip"] == ADDRESSES[appliance]
        env = environment(loop, first[appliance])
        assert (env["K3S_TOKEN"], env["K3S_URL"]) == (token, server)
    assert joins["mall-9-b"]["advertise-address"] == "127.0.0.12"
    # nodes run in their appliance's network: before the stand-in API listens nothing
    # answers; then every node reaches it at the first server's appliance address
    assert not reaches(loop, first[WORKER], server)
    stand_in_api(loop, first["mall-9-a"], "127.0.0.11")
    for appliance, container in first.items():
        assert reaches(loop, container, server), appliance
    # the token is in no file of the repository, no plan and no log
    assert not any(
        token in p.read_text(errors="replace") for p in loop.fleet.root.rglob("*") if p.is_file()
    )
    assert token not in str(plan_json(loop, "HEAD~1", "HEAD"))
    assert token not in loop.logs()
    assert not any(token in p.read_text(errors="replace") for p in loop.work.glob("*.log"))

    # a marker in the worker's data volume survives a config change ...
    code, _ = exec_in(loop, first[WORKER], f"echo kept > {DATA}/marker")
    assert code == 0
    shop = f"sites/{SITE}/clusters/shop.yaml"
    loop.fleet.edit(shop, "maxPods: 80\n", "maxPods: 80\n        kubeletArgs: [max-pods=90]\n")
    loop.commit("mall-9: more pods")
    second = changed_everywhere(loop, first, "the nodes to restart with the new config")
    assert marker(loop, second[WORKER]) == "kept"
    # ... and the first server, made again after the cluster formed, joins a server that
    # runs (mall-9-b's) instead of starting a second cluster
    again = environment(loop, second["mall-9-a"])
    assert again["K3S_URL"] == "https://127.0.0.12:6443"
    assert "K3S_CLUSTER_INIT" not in again
    assert "cluster-init" not in join_of(loop, second["mall-9-a"])
    stand_in_api(loop, second["mall-9-b"], "127.0.0.12")
    assert reaches(loop, second["mall-9-a"], again["K3S_URL"])

    # ... a k3s version change ...
    loop.fleet.edit("profiles/mall-1.0.0.yaml", "version: 1.30.4", "version: 1.30.6")
    loop.commit("mall: k3s 1.30.6")
    third = changed_everywhere(loop, second, "the nodes to restart on k3s 1.30.6")
    assert marker(loop, third[WORKER]) == "kept"

    # ... and an SSH key change
    loop.fleet.edit(shop, KEY_1, KEY_2)
    loop.commit("mall-9: rotate the ops key")
    fourth = changed_everywhere(loop, third, "the nodes to restart with the new key")
    assert marker(loop, fourth[WORKER]) == "kept"
    assert {join_of(loop, c)["token"] for c in fourth.values()} == {token}

    # removing the worker's appliance (and its pool) from Git removes its node and volume,
    # then revokes its token
    agent_token = Path(loop.work / WORKER / "token").read_text().strip()
    loop.fleet.edit(shop, f"    - name: workers\n      size: 1\n      appliances: [{WORKER}]\n", "")
    loop.fleet.remove(f"sites/{SITE}/appliances/{WORKER}.yaml")
    loop.commit("mall-9: the fourth appliance leaves")
    wait_for(lambda: WORKER not in running(loop), 120, "the worker node to be removed")
    wait_for(
        lambda: not loop.client.volumes.list(filters={"label": f"edgefleet.appliance={WORKER}"}),
        60,
        "the worker's data volume to be removed",
    )

    wait_for(
        lambda: token_revoked(loop, agent_token),
        60,
        "the removed appliance's token to stop working",
    )
    listed = loop.fleet_status()["decommissioned"]
    assert [d["appliance"] for d in listed] == [WORKER]  # type: ignore[index]
    # the others keep running, with the data they had
    assert set(running(loop)) == set(SERVERS)


def test_a_worker_on_an_appliance_without_a_server_joins_the_server_on_another(
    loop: Loop,
) -> None:
    # two appliances: the control plane on one, the only worker on the other
    f = loop.fleet
    addresses = {"deli-3-a": "127.0.0.21", "deli-3-b": "127.0.0.22"}
    write_site(f, "deli-3", list(addresses), cidr="192.168.3.0/24", appliance_type="bare-metal")
    f.write(
        "sites/deli-3/clusters/deli.yaml",
        f"""
        apiVersion: edgefleet.dev/v1
        kind: Cluster
        metadata:
          name: deli
        spec:
          profiles:
            - name: store
              version: 1.0.0
              variables:
                storeId: "0003"
          packs:
            k3s:
              values:
                nodeImage: {loop.image}
          nodePools:
            - name: main
              controlPlane: true
              size: 1
              appliances: [deli-3-a]
            - name: workers
              size: 1
              appliances: [deli-3-b]
        """,
    )
    loop.commit("deli-3: a server and a worker on two appliances")
    for appliance, address in addresses.items():
        config = loop.agent_config(appliance).model_copy(update={"ip": address})
        loop.start_agent(appliance, config=config)

    def both() -> dict[str, str]:
        found = {a: loop.containers(a) for a in addresses}
        if "deli-main-1" in found["deli-3-a"] and "deli-workers-1" in found["deli-3-b"]:
            return {"server": found["deli-3-a"]["deli-main-1"],
                    "worker": found["deli-3-b"]["deli-workers-1"]}  # fmt: skip
        return {}

    nodes = wait_for(both, 120, "the server and the worker")
    assert isinstance(nodes, dict)
    server, worker = join_of(loop, nodes["server"]), join_of(loop, nodes["worker"])
    assert server["token"] == worker["token"]
    assert server["cluster-init"] == "true"
    assert worker["server"] == "https://127.0.0.21:6443"
    env = environment(loop, nodes["worker"])
    assert (env["K3S_TOKEN"], env["K3S_URL"]) == (server["token"], "https://127.0.0.21:6443")
    assert not reaches(loop, nodes["worker"], worker["server"])
    stand_in_api(loop, nodes["server"], "127.0.0.21")
    assert reaches(loop, nodes["worker"], worker["server"])
