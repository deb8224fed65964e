"""A virtualized state applied on libvirt's test driver: the domains, disks, NICs, pinning,
metadata and seeds it yields, and that applying it again changes nothing."""

from __future__ import annotations

from agent.apply.passes import Phase
from agent.naming import data_volume, root_volume
from agent.secrets.keys import generate
from tests.libvirt.harness import NAMESPACE, LibvirtAgent
from tests.libvirt.states import manifests, state, vm_cluster
from tests.support.secrets import key_file, sealed_for
from tests.support.states import secret_manifest

GIB = 1024**3


def test_each_node_becomes_a_domain_with_its_disks_nics_pinning_and_seed(
    fast_agent: LibvirtAgent,
) -> None:
    agent = fast_agent
    name = agent.name("pos")
    desired = state(agent.appliance, vm_cluster(name, appliance=agent.appliance, workers=1))

    result = agent.apply(desired)

    assert result.ok, result
    assert [t.progress for t in result.cluster(name).tasks] == [
        f"create node {name}-main-1 1/2",  # no network of the agent's: the operator's are used
        f"create node {name}-workers-1 2/2",
    ]
    control = agent.node_domain(f"{name}-main-1")
    worker = agent.node_domain(f"{name}-workers-1")
    assert (control.state, worker.state) == ("running", "running")
    assert control.name.startswith(f"{name}-main-1-") and len(control.name) == len(name) + 16

    xml = agent.xml(control.name)
    assert xml.get("type") == "test"
    assert (xml.findtext("vcpu"), xml.find("vcpu").get("cpuset")) == ("1", "0")
    assert xml.findtext("memory") == str(1024 * 1024)  # KiB
    disks = [
        (d.get("device"), d.find("source").get("pool"), d.find("source").get("volume"))
        for d in xml.findall("devices/disk")
    ]
    # the root disk is named after what it is cloned from (it outlives the domain), the seed
    # after the domain
    control_node, worker_node = desired.clusters[0].nodes[1], desired.clusters[0].nodes[0]
    root_owner = root_volume(control_node, default_image=None).removesuffix("-root")
    assert disks[0] == ("disk", "vms", f"{agent.appliance}.{name}.{root_owner}.root.qcow2")
    prefix = f"{agent.appliance}.{name}.{control.name}"
    assert disks[1][:2] == ("cdrom", "vms") and disks[1][2].startswith(f"{prefix}.seed-")
    assert [
        (i.get("type"), i.find("source").get("network")) for i in xml.findall("devices/interface")
    ] == [("network", "default")]
    meta = xml.find("metadata/ef:node", NAMESPACE)
    seed_tag = "{" + NAMESPACE["ef"] + "}seed"
    assert meta is not None
    assert {child.tag.split("}")[1]: child.text for child in meta if child.tag != seed_tag} == {
        "appliance": agent.appliance,
        "cluster": name,
        "pool": "main",
        "node": f"{name}-main-1",
        "role": "control-plane",
        "revision": "rev-1",
        "digest": desired.digest,
        "spec": control.metadata.spec,
    }

    xml = agent.xml(worker.name)
    assert xml.find("vcpu").get("cpuset") is None
    sources = [d.find("source").get("pool") for d in xml.findall("devices/disk")]
    assert sources == ["vms", "data", "vms"]  # root, data disk, seed
    assert [
        (i.get("type"), i.find("source").get("bridge")) for i in xml.findall("devices/interface")
    ] == [("bridge", "br-test")]
    root_owner = root_volume(worker_node, default_image=None).removesuffix("-root")
    data_owner = data_volume(worker_node).removesuffix("-data")
    root = agent.connection.storagePoolLookupByName("vms").storageVolLookupByName(
        f"{agent.appliance}.{name}.{root_owner}.root.qcow2"
    )
    data = agent.connection.storagePoolLookupByName("data").storageVolLookupByName(
        f"{agent.appliance}.{name}.{data_owner}.data.qcow2"
    )
    assert (root.info()[1], data.info()[1]) == (4 * GIB, 8 * GIB)

    seed = agent.seed(control.name)
    assert seed.user_data == desired.clusters[0].nodes[1].userData
    assert seed.meta_data == (f'instance-id: "{control.name}"\nlocal-hostname: "{name}-main-1"\n')
    assert sorted(seed.manifests) == ["01-demo-a.yaml", "02-demo-b.yaml"]
    assert seed.manifests["02-demo-b.yaml"] == desired.clusters[0].manifests[1].content
    assert "edgefleet-manifests-sync" in seed.vendor_data
    worker_seed = agent.seed(worker.name)
    assert worker_seed.manifests == {}  # manifests go to control-plane nodes only
    assert "edgefleet-manifests-sync" not in worker_seed.vendor_data


def test_values_land_escaped_in_the_xml_and_exact_in_the_seed(fast_agent: LibvirtAgent) -> None:
    agent = fast_agent
    name = agent.name("pos")
    tricky = "# <b>&amp; 'quoted' \"double\" ]]>\n"
    desired = state(
        agent.appliance,
        vm_cluster(name, appliance=agent.appliance, user_data=tricky),
        revision="rev <1> & 'two'",
    )

    assert agent.apply(desired).ok

    control = agent.node_domain(f"{name}-main-1")
    assert control.metadata.revision == "rev <1> & 'two'"
    assert agent.seed(control.name).user_data.endswith(tricky)


def test_the_same_state_applied_twice_changes_nothing(fast_agent: LibvirtAgent) -> None:
    agent = fast_agent
    name = agent.name("pos")
    desired = state(agent.appliance, vm_cluster(name, appliance=agent.appliance, workers=2))
    assert agent.apply(desired).ok
    before = {d.name: agent.connection.lookupByName(d.name).UUIDString() for d in agent.domains()}
    volumes = agent.volume_names()

    again = agent.apply(desired)

    assert again.ok and again.cluster(name).phase is Phase.RUNNING
    assert again.cluster(name).tasks == ()
    assert again.cluster(name).events == ()
    assert {
        d.name: agent.connection.lookupByName(d.name).UUIDString() for d in agent.domains()
    } == before
    assert agent.volume_names() == volumes


def test_a_state_with_other_manifests_keeps_workers_and_names_its_control_plane(
    fast_agent: LibvirtAgent,
) -> None:
    agent = fast_agent
    name = agent.name("pos")
    desired = state(
        agent.appliance, vm_cluster(name, appliance=agent.appliance, files=manifests("x.yaml"))
    )
    assert agent.apply(desired).ok
    control = agent.node_domain(f"{name}-main-1")
    assert [r.name for r in agent.records() if r.kind == "manifest"] == ["01-demo-x.yaml"]
    assert {r.parent for r in agent.records() if r.kind == "manifest"} == {control.name}


def test_an_encrypted_manifest_reaches_the_control_plane_seed_as_plaintext(
    fast_agent: LibvirtAgent,
) -> None:
    """A virtual node gets its manifests on its seed CD, whose sync script copies them into
    the node's manifests folder with mode 0600: an opened secret travels that way alone."""
    agent = fast_agent
    identity = generate()
    key_file(agent.data_dir, identity)
    name = agent.name("pos")
    files = [*manifests("a.yaml"), secret_manifest(sealed_for(identity))]
    desired = state(agent.appliance, vm_cluster(name, appliance=agent.appliance, files=files))

    assert agent.apply(desired).ok
    control = agent.node_domain(f"{name}-main-1")
    seed = agent.seed(control.name)
    assert sorted(seed.manifests) == ["01-demo-a.yaml", "02-secrets-pos-token.yaml"]
    assert 'token: "enr-7f3k9q2m4x8v"' in seed.manifests["02-secrets-pos-token.yaml"]
    assert agent.seed(agent.node_domain(f"{name}-workers-1").name).manifests == {}
    xml = agent.connection.lookupByName(control.name).XMLDesc(0)
    assert "enr-7f3k9q2m4x8v" not in xml
