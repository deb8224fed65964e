"""OS patching against the real Docker driver. The node image carries a stand-in package
manager (``tools/pkg``) that behaves like ``apk upgrade``: it prints what it upgrades, raises
the version in /etc/os-release, and asks for a reboot through /var/run/reboot-required."""

from __future__ import annotations

from agent.contract import PatchParameters, PatchSchedule, Schedule
from agent.daytwo.records import RunState, Trigger
from tests.support.daytwo import Site


def patch_policy(*, reboot: bool, on_boot: bool = False) -> Schedule:
    return PatchSchedule(
        name="os-patch",
        cron="0 2 * * sun",
        timezone="UTC",
        parameters=PatchParameters(onBoot=on_boot, rebootIfRequired=reboot),
    )


def started_at(site: Site, node: str) -> str:
    container = site.agent.node_container(node)
    container.reload()
    return str(container.attrs["State"]["StartedAt"])


def test_nodes_are_patched_one_at_a_time_control_plane_first_and_rebooted_if_asked(
    site: Site,
) -> None:
    cluster = site.cluster("pos", workers=2, schedules=[patch_policy(reboot=True)])
    desired = site.state(cluster)
    site.apply(desired)
    name = cluster.name
    site.exec(f"{name}-workers-1", "sh", "-c", "mkdir -p /etc/pkg && touch /etc/pkg/kernel-pending")
    before = {n.name: started_at(site, n.name) for n in cluster.nodes}

    (result,) = site.operations().run_now("patch", state=desired, cluster=name)

    assert result.state is RunState.DONE, result
    assert result.trigger is Trigger.ON_DEMAND
    assert [n.node for n in result.nodes] == [
        f"{name}-main-1",
        f"{name}-workers-1",
        f"{name}-workers-2",
    ]
    assert [n.at for n in result.nodes] == sorted(n.at for n in result.nodes)
    assert {(n.previous, n.version) for n in result.nodes} == {("3.19.0", "3.19.1")}
    rebooted = {n.node: (n.rebooted, n.reboot_required) for n in result.nodes}
    assert rebooted == {
        f"{name}-main-1": (False, False),
        f"{name}-workers-1": (True, False),  # the reboot emptied /var/run
        f"{name}-workers-2": (False, False),
    }
    after = {n.name: started_at(site, n.name) for n in cluster.nodes}
    assert [n for n in after if after[n] != before[n]] == [f"{name}-workers-1"]
    for node in cluster.nodes:
        assert "VERSION_ID=3.19.1" in site.exec(node.name, "cat", "/etc/os-release")
    status = site.operations().history.status(name)
    assert {(p.node, p.version, p.state) for p in status.patches} == {
        (n.name, "3.19.1", RunState.DONE) for n in cluster.nodes
    }
    assert result.to_json()["nodes"][1]["rebooted"] is True


def test_a_node_that_needs_a_reboot_is_reported_when_rebooting_is_off(site: Site) -> None:
    cluster = site.cluster("pos", workers=0, schedules=[patch_policy(reboot=False)])
    desired = site.state(cluster)
    site.apply(desired)
    node = f"{cluster.name}-main-1"
    site.exec(node, "sh", "-c", "mkdir -p /etc/pkg && touch /etc/pkg/kernel-pending")
    before = started_at(site, node)

    (result,) = site.operations().run_now("patch", state=desired, cluster=cluster.name)

    (patched,) = result.nodes
    assert (patched.state, patched.reboot_required, patched.rebooted) == (
        RunState.DONE,
        True,
        False,
    )
    assert started_at(site, node) == before
    assert "restart required" in site.exec(node, "cat", "/var/run/reboot-required")


def test_a_failing_upgrade_stops_the_run_at_that_node(site: Site) -> None:
    cluster = site.cluster("pos", workers=1, schedules=[patch_policy(reboot=True)])
    desired = site.state(cluster)
    site.apply(desired)
    site.exec(f"{cluster.name}-main-1", "sh", "-c", "mkdir -p /etc/pkg && touch /etc/pkg/broken")

    (result,) = site.operations().run_now("patch", state=desired, cluster=cluster.name)

    assert result.state is RunState.FAILED
    (failed,) = result.nodes  # the worker is never touched
    assert failed.node == f"{cluster.name}-main-1"
    assert (
        failed.error == "upgrade exited 99: ERROR: unable to lock database: temporarily unavailable"
    )
    assert "VERSION_ID=3.19.0" in site.exec(f"{cluster.name}-workers-1", "cat", "/etc/os-release")


def test_patch_on_boot_runs_once_per_boot_for_clusters_that_ask_for_it(site: Site) -> None:
    booting = site.cluster("pos", workers=0, schedules=[patch_policy(reboot=True, on_boot=True)])
    other = site.cluster("kiosk", workers=0, schedules=[patch_policy(reboot=True)])
    desired = site.state(booting, other)
    site.apply(desired)
    operations = site.operations()

    first = operations.on_boot(desired, boot_id="boot-1")
    again = operations.on_boot(desired, boot_id="boot-1")  # the agent restarted, not the machine
    after_reboot = operations.on_boot(desired, boot_id="boot-2")

    assert [(r.cluster, r.trigger, r.state) for r in first] == [
        (booting.name, Trigger.BOOT, RunState.DONE)
    ]
    assert again == ()
    assert [r.nodes[0].version for r in after_reboot] == ["3.19.2"]
    assert "VERSION_ID=3.19.0" in site.exec(f"{other.name}-main-1", "cat", "/etc/os-release")
