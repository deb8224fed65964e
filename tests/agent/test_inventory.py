"""The inventory on disk (no engine): one agent per data folder, records and journal that
survive a restart, and the last good state written whole."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.apply.inventory import STATE_NAME, ClusterStage, Inventory, InventoryBusy, Record
from agent.apply.journal import StepStatus
from tests.support.states import cluster, state

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_second_agent_on_the_same_data_folder_is_refused(tmp_path: Path) -> None:
    with Inventory.open(tmp_path), pytest.raises(InventoryBusy, match="another agent"):
        Inventory.open(tmp_path)
    Inventory.open(tmp_path).close()  # free again once the first one closed


def test_records_stages_and_open_steps_survive_a_restart(tmp_path: Path) -> None:
    node = Record("container", "pos-main-1-0123abcd", "pos", pool="main", node="pos-main-1")
    with Inventory.open(tmp_path) as inventory:
        inventory.record(node, Record("network", "edgefleet-pos", "pos"))
        inventory.set_cluster_stage("pos", ClusterStage.PROVISIONING, at=NOW)
        done = inventory.begin_step(
            digest="d", cluster="pos", action="ensure-network", title="t1", resources=(), at=NOW
        )
        inventory.settle_step(done, StepStatus.DONE, at=NOW)
        inventory.begin_step(
            digest="d", cluster="pos", action="create-node", title="t2", resources=(node,), at=NOW
        )

    with Inventory.open(tmp_path) as inventory:
        assert [r.kind for r in inventory.records()] == ["container", "network"]
        assert inventory.cluster_stages() == {"pos": ClusterStage.PROVISIONING}
        (open_step,) = inventory.open_steps()
        assert (open_step.title, Record.from_json(open_step.resources[0])) == ("t2", node)
        inventory.drop_cluster("pos")
        assert inventory.records() == () and inventory.cluster_stages() == {}


def test_the_last_good_state_is_kept_whole_and_private(tmp_path: Path) -> None:
    desired = state("a1", cluster("pos", appliance="a1"))
    with Inventory.open(tmp_path) as inventory:
        assert inventory.last_good_state() is None
        inventory.keep_state(desired)
        assert inventory.last_good_state() == desired
    assert (tmp_path / STATE_NAME).read_bytes() == desired.canonical_json()
    assert (tmp_path / STATE_NAME).stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob("*.partial"))
