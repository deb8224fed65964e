"""Schedules in the contract: one parameters model per kind, read back from their JSON, and
the JSON the reconciler rendered before they were typed (so digests do not change)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agent.contract import (
    SCAN_TOOLS,
    BackupSchedule,
    PatchSchedule,
    ScanSchedule,
    canonical_json,
    schedule_from,
)

BACKUP: dict[str, Any] = {
    "kind": "backup",
    "name": "backup",
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
    "parameters": {
        "location": {"name": "nas", "provider": "file", "path": "/srv/backups"},
        "prefix": "sites/store-1/pos",
        "expiryHours": 168,
        "namespaces": ["pos"],
        "includeClusterResources": "auto",
    },
}


def test_each_kind_reads_back_as_its_own_model_and_dumps_the_same_json() -> None:
    documents = [
        {**BACKUP, "kind": "patch", "name": "os-patch",
         "parameters": {"onBoot": True, "rebootIfRequired": False}},
        {**BACKUP, "kind": "scan", "name": "scan-penetration",
         "parameters": {"scan": "penetration", "tool": "kube-hunter"}},
        BACKUP,
    ]  # fmt: skip
    schedules = [schedule_from(document) for document in documents]
    assert [type(s) for s in schedules] == [PatchSchedule, ScanSchedule, BackupSchedule]
    for schedule, document in zip(schedules, documents, strict=True):
        assert canonical_json(schedule.model_dump(mode="json")) == canonical_json(document)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "scan"}, r"scan\.parameters\.scan\n  Field required"),  # a backup's, as a scan
        ({"kind": "reboot"}, "does not match any of the expected tags"),
        ({"parameters": {**BACKUP["parameters"], "location": {"name": "nas"}}}, "provider"),
        ({"parameters": {**BACKUP["parameters"], "retention": 3}}, "retention"),
    ],
)
def test_parameters_that_do_not_fit_their_kind_are_refused(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        schedule_from({**BACKUP, **change})


def test_every_scan_type_has_its_tool() -> None:
    assert dict(SCAN_TOOLS) == {
        "configuration": "kube-bench",
        "penetration": "kube-hunter",
        "conformance": "sonobuoy",
    }
