"""The ``Fleet`` kind (fleet.yaml): rollout waves, backup locations, extra pack folders."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from .common import Duration, Labels, Name, NonEmptyStr, Strict, Url


def _max_failures(value: int | str) -> int | str:
    if isinstance(value, int):
        if value < 0:
            raise ValueError("maxFailures must not be negative")
        return value
    if not re.fullmatch(r"(100|[1-9]?\d)%", value):
        raise ValueError(f"maxFailures '{value}' must be a count or a percentage like 10%")
    return value


def _credentials_ref(value: str) -> str:
    # the agent reads <ref>_ACCESS_KEY_ID and <ref>_SECRET_ACCESS_KEY: only its own variables
    if not re.fullmatch(r"EDGEFLEET_[A-Z0-9_]{1,100}", value):
        raise ValueError(
            f"credentialsRef must name EDGEFLEET_-prefixed variables, like EDGEFLEET_S3 "
            f"(got '{value[:60]}')"
        )
    return value


class WaveSelector(Strict):
    labels: Labels = {}


class Wave(Strict):
    name: Name
    selector: WaveSelector = WaveSelector()


class Rollout(Strict):
    waves: Annotated[list[Wave], Field(min_length=1)]
    maxFailures: Annotated[int | str, AfterValidator(_max_failures)] = 0
    soak: Duration = "0s"


class BackupLocation(Strict):
    name: Name
    provider: Literal["file", "s3"]
    bucket: NonEmptyStr | None = None
    path: NonEmptyStr | None = None
    endpoint: Url | None = None
    region: NonEmptyStr | None = None
    prefix: str = ""
    credentialsRef: Annotated[str, AfterValidator(_credentials_ref)] | None = None
    caCert: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _provider_fields(self) -> BackupLocation:
        if self.provider == "file" and not self.path:
            raise ValueError("a file backup location needs a path")
        if self.provider == "s3" and not self.bucket:
            raise ValueError("an s3 backup location needs a bucket")
        return self


class FleetSpec(Strict):
    rollout: Rollout
    backupLocations: list[BackupLocation] = []
    packRegistries: list[NonEmptyStr] = []


class FleetMetadata(Strict):
    name: Name
    labels: Labels = {}


class Fleet(Strict):
    apiVersion: Literal["edgefleet.dev/v1"]
    kind: Literal["Fleet"]
    metadata: FleetMetadata
    spec: FleetSpec
