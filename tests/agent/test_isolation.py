"""One failing cluster never stops the others, and leaves no half-made node behind."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import docker

from agent.apply.applying import apply_state
from agent.apply.inventory import Inventory
from agent.apply.passes import Phase, TaskState
from agent.clocks import SystemClock
from agent.drivers import Reason
from agent.drivers.docker import DockerDriver, DockerSettings
from tests.support.appliances import TestAgent
from tests.support.states import cluster, state


def test_a_cluster_whose_image_is_missing_fails_alone(agent: TestAgent) -> None:
    broken, fine = agent.name("broken"), agent.name("fine")
    missing = f"edgefleet-test-missing:{agent.run_id}"
    desired = state(
        agent.appliance,
        cluster(broken, appliance=agent.appliance, image=missing),
        cluster(fine, appliance=agent.appliance),
    )

    result = agent.apply(desired)

    assert not result.ok
    failed = result.cluster(broken)
    assert (failed.phase, failed.reason, failed.retryable) == (
        Phase.ERROR,
        Reason.IMAGE_MISSING,
        False,
    )
    assert missing in (failed.message or "")
    assert [t.state for t in failed.tasks] == [
        TaskState.DONE,  # the network
        TaskState.FAILED,  # the control-plane node
        TaskState.SKIPPED,  # the worker: a cluster stops at its first failure
    ]
    assert result.cluster(fine).phase is Phase.RUNNING
    assert len(agent.containers(fine)) == 2
    assert agent.containers(broken) == []  # nothing half made is left
    assert [v for v in agent.volume_names() if v.startswith(broken)] == []

    # the failed digest is attempted, not applied
    with Inventory.open(agent.data_dir) as inventory:
        attempted, applied = inventory.last_attempted(), inventory.last_applied()
    assert attempted is not None and attempted.digest == desired.digest
    assert applied is None


def test_an_engine_that_does_not_answer_fails_every_cluster_as_retryable(
    tmp_path: Path,
) -> None:
    # a pinned API version: the client does not contact the engine until it is used
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.41")
    driver = DockerDriver(client=client, settings=DockerSettings(pull="never"))
    desired = state("a1", cluster("pos", appliance="a1"), cluster("web", appliance="a1"))

    with Inventory.open(tmp_path / "data") as inventory, warnings.catch_warnings():
        # the docker SDK leaves the socket of a failed unix connect to the garbage collector:
        # collect it here, where its warning is expected, not in some later test
        warnings.simplefilter("ignore", ResourceWarning)
        result = apply_state(desired, driver=driver, inventory=inventory, clock=SystemClock())
        kept = inventory.last_good_state()
        gc.collect()
    client.close()

    assert [(c.name, c.phase, c.reason, c.retryable) for c in result.clusters] == [
        ("pos", Phase.ERROR, Reason.ENGINE_UNREACHABLE, True),
        ("web", Phase.ERROR, Reason.ENGINE_UNREACHABLE, True),
    ]
    assert kept == desired  # the site runs from it once the engine is back
