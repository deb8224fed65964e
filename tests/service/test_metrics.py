"""``GET /metrics``: the named series, from the app's own registry."""

from __future__ import annotations

import threading
import time

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Harness
from .fleets import digests, release, revision, site

SITES = [site("grocery-1", ring="canary"), site("store-2")]


def samples(server: Harness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = server.http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def test_metrics_name_every_series(server: Harness) -> None:
    rel = release(revision("r1"), SITES)
    server.rollout.record_release(rel, reconcile_seconds=0.3)
    server.rollout.record_failure(revision("bad"), ["x.yaml:1: broken"], reconcile_seconds=0.1)
    agent = server.agent("grocery-1-edge")
    server.agent("stranger-1")
    agent.apply()
    short = rel.revision[:7]

    waiting = threading.Thread(
        target=lambda: agent.desired(etag=digests(rel)["grocery-1-edge"], wait=3)
    )
    waiting.start()
    deadline = time.monotonic() + 5
    while server.rollout.notifier.waiting() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    values = samples(server)
    waiting.join()

    assert values[("edgefleet_longpolls_open", ())] == 1
    assert values[("edgefleet_revisions_total", (("outcome", "good"),))] == 1
    assert values[("edgefleet_revisions_total", (("outcome", "failed"),))] == 1
    assert values[("edgefleet_reconcile_duration_seconds_count", ())] == 2
    assert abs(values[("edgefleet_reconcile_duration_seconds_sum", ())] - 0.4) < 1e-9
    assert values[("edgefleet_reconcile_duration_seconds_bucket", (("le", "0.25"),))] == 1
    assert values[("edgefleet_agents", (("health", "healthy"), ("status", "In-Use")))] == 1
    assert values[("edgefleet_agents", (("health", "unknown"), ("status", "Unpaired")))] == 1
    assert values[("edgefleet_agents", (("health", "healthy"), ("status", "Discovered")))] == 1
    assert values[("edgefleet_rollout_wave", (("revision", short),))] == 1
    assert values[("edgefleet_rollout_sites", (("revision", short), ("state", "done")))] == 1
    assert values[("edgefleet_rollout_sites", (("revision", short), ("state", "changed")))] == 2
    progress = (("revision", short), ("state", "running"))
    assert values[("edgefleet_rollout_progress_ratio", progress)] == 0.5
    assert samples(server)[("edgefleet_longpolls_open", ())] == 0


def test_each_app_has_its_own_registry(server: Harness) -> None:
    assert not [m for m in REGISTRY.collect() if m.name.startswith("edgefleet_")]
    assert server.http.get("/metrics").status_code == 200
