"""Day-2 runs of a cluster spanning appliances, against the real Docker driver: two or three
agents (appliances on the session's engine), each running its own control-plane node of the
one cluster. Reboots take the reconciler's lease (its own grant logic on a real SQLite store);
backups of one scheduled run share one backup ID, each appliance's part in its own folder."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest

from agent.contract import (
    BackupSchedule,
    ClusterJoin,
    ClusterServer,
    DesiredState,
    PatchParameters,
    PatchSchedule,
    Schedule,
)
from agent.daytwo.records import RunState
from agent.daytwo.schedules.scheduler import Occurrence
from reconciler.rollout.leases import give_back, grant
from reconciler.store import Assignment, Store
from tests.daytwo.volumes import tree, write_data
from tests.support.appliances import Agent
from tests.support.daytwo import Images, Site
from tests.support.engine import Engine
from tests.support.states import cluster, state

TOKEN = "0f" * 32


@pytest.fixture
def appliances(
    engine: Engine,
    docker_client: docker.DockerClient,
    images_built: Images,
    run_id: str,
    tmp_path: Path,
) -> Iterator[Callable[[int], tuple[Site, ...]]]:
    """Make ``count`` appliances (agents on the session's engine); removed at the end."""
    sites: list[Site] = []

    def make(count: int) -> tuple[Site, ...]:
        for _ in range(count):
            agent = Agent(
                appliance=f"d{uuid.uuid4().hex[:6]}",
                data_dir=tmp_path / f"agent-{len(sites) + 1}",
                client=docker_client,
                base_url=engine.base_url,
                image=images_built.node,
                run_id=run_id,
            )
            sites.append(Site(agent, images_built))
        return tuple(sites[-count:])

    try:
        yield make
    finally:
        for site in sites:
            site.remove_everything()


def spanning(sites: Sequence[Site], schedules: list[Schedule]) -> tuple[DesiredState, ...]:
    """Each appliance's state of a cluster whose control plane is one node on each."""
    name = f"s{uuid.uuid4().hex[:6]}"
    nodes = []
    for index, site in enumerate(sites, 1):
        (node,) = [n for n in cluster(name, appliance=site.appliance, workers=0).nodes]
        nodes.append(node.model_copy(update={"name": f"{name}-main-{index}"}))
    states = []
    for index, site in enumerate(sites):
        shape = cluster(name, appliance=site.appliance, workers=0)
        mine = shape.model_copy(
            update={
                "nodes": [nodes[index]],
                "schedules": schedules,
                "appliances": [s.appliance for s in sites],
                "servers": [ClusterServer(node=n.name, appliance=n.appliance) for n in nodes],
            }
        )
        join = ClusterJoin(
            cluster=name,
            token=TOKEN,
            server=None if index == 0 else "https://127.0.0.1:6443",
            init=index == 0,
        )
        states.append(state(site.appliance, mine).model_copy(update={"join": [join]}))
    return tuple(states)


class StoreGate:
    """The reboot gate as the reconciler answers ``POST /v1/leases``: its grant logic on its
    store; records when this appliance held the lease."""

    def __init__(self, store: Store, appliance: str) -> None:
        self.store, self.appliance = store, appliance
        self.held: list[tuple[float, float]] = []
        self._since: float | None = None

    def acquire(self, cluster: str, *, seconds: float) -> str | None:
        with self.store.write(exclusive=True) as tx:
            found = grant(
                tx, self.appliance, cluster, purpose="patch", seconds=seconds, now=time.time()
            )
        if not found.granted:
            return f"held by {found.holder}"
        self._since = time.monotonic()
        return None

    def release(self, cluster: str) -> None:
        assert self._since is not None
        self.held.append((self._since, time.monotonic()))
        with self.store.write(exclusive=True) as tx:
            give_back(tx, self.appliance, cluster)


def serving(store: Store, states: tuple[DesiredState, ...]) -> None:
    """The reconciler's store serves each appliance its state."""
    with store.write() as tx:
        tx.documents.put({s.digest: s.canonical_json().decode() for s in states}, at=time.time())
        tx.assignments.put_many(
            [
                Assignment(
                    appliance=s.appliance,
                    site=s.site,
                    declared=True,
                    served_digest=s.digest,
                    served_revision=s.revision,
                )
                for s in states
            ]
        )


def test_two_control_plane_appliances_never_reboot_at_once(
    appliances: Callable[[int], tuple[Site, ...]], tmp_path: Path
) -> None:
    pair = appliances(2)
    patch = PatchSchedule(
        name="os-patch",
        cron="0 3 * * sun",
        timezone="UTC",
        parameters=PatchParameters(rebootIfRequired=True),
    )
    states = spanning(pair, [patch])
    store = Store(f"sqlite:///{tmp_path / 'reconciler.db'}")
    serving(store, states)
    gates = []
    results = {}
    for site, desired in zip(pair, states, strict=True):
        site.apply(desired)
        (node,) = desired.clusters[0].nodes
        site.exec(node.name, "sh", "-c", "mkdir -p /etc/pkg && touch /etc/pkg/kernel-pending")
        gates.append(StoreGate(store, site.appliance))

    def run(index: int) -> None:
        site, desired = pair[index], states[index]
        operations = site.operations(gate=gates[index])
        (results[index],) = operations.run_now(
            "patch", state=desired, cluster=desired.clusters[0].name
        )

    # the same schedule fires on both appliances at the same moment
    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    for index in (0, 1):
        (patched,) = results[index].nodes
        assert results[index].state is RunState.DONE, results[index]
        assert patched.rebooted is True
    (first,), (second,) = (g.held for g in gates)
    # one held the lease (and rebooted) while the other waited for it
    assert first[1] <= second[0] or second[1] <= first[0], (first, second)


def test_one_scheduled_backup_covers_every_appliance_and_restores_them(
    appliances: Callable[[int], tuple[Site, ...]], tmp_path: Path
) -> None:
    trio = appliances(3)  # a cluster over three appliances, one server on each
    folder = tmp_path / "backups"
    backup = BackupSchedule(
        name="backup",
        cron="0 23 * * *",
        timezone="UTC",
        parameters={
            "location": {"name": "nas", "provider": "file", "path": str(folder)},
            "prefix": "mall",
        },
    )
    states = spanning(trio, [backup])
    due = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    ids = set()
    before = {}
    for index, (site, desired) in enumerate(zip(trio, states, strict=True)):
        site.apply(desired)
        (node,) = desired.clusters[0].nodes
        write_data(site, node.name, f"p{index}")
        before[site.appliance] = tree(site, node.name)
        operations = site.operations(current_state=lambda d=desired: d)
        schedule = desired.clusters[0].schedules[0]
        occurrence = Occurrence("backup", desired.clusters[0].name, schedule, due)
        assert operations.scheduled(occurrence) is None
        result = operations.history.status(desired.clusters[0].name).last_backup
        assert result is not None and result.state is RunState.DONE, result.error
        ids.add(result.id)
    (identity,) = ids  # one run, one backup ID
    parts = sorted(p.name for p in (folder / "mall" / identity).iterdir())
    assert parts == sorted(s.appliance for s in trio)
    for site in trio:
        assert (folder / "mall" / identity / site.appliance / "manifest.json").is_file()

    # each appliance restores its own part of the one backup
    for site, desired in zip(trio, states, strict=True):
        (node,) = desired.clusters[0].nodes
        site.exec(node.name, "sh", "-c", "cd /var/lib/rancher/k3s && rm -r storage && echo x > y")
        assert tree(site, node.name) != before[site.appliance]
        site.operations().restore(identity, state=desired)
        assert tree(site, node.name) == before[site.appliance]
