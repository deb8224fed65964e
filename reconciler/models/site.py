"""The ``Site`` and ``Appliance`` kinds (``sites/<site>/``)."""

from __future__ import annotations

from typing import Annotated, Literal

from cryptography import x509
from pydantic import AfterValidator, BeforeValidator, Field

from .common import (
    AgeRecipient,
    Cidr,
    Duration,
    IPv4,
    Labels,
    Name,
    NonEmptyStr,
    Scalar,
    Strict,
    TimeOfDay,
    TimeZone,
    Url,
)


def _lowercase(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


# day names in any case (Mon, MON, mon); kept lowercase, as the agent and the rollout read them
Weekday = Annotated[
    Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], BeforeValidator(_lowercase)
]


def _pem(value: str) -> str:
    text = value.strip()
    begin = "-----BEGIN CERTIFICATE-----"
    if not text.startswith(begin) or text.count(begin) != 1:
        raise ValueError("a CA certificate must be one PEM block (-----BEGIN CERTIFICATE-----)")
    try:
        x509.load_pem_x509_certificate(text.encode())
    except ValueError:
        raise ValueError("the CA certificate does not parse as an X.509 PEM certificate") from None
    return value


class Network(Strict):
    cidrs: list[Cidr] = []
    httpProxy: Url | None = None
    httpsProxy: Url | None = None
    noProxy: str | list[NonEmptyStr] | None = None  # "a,b" or [a, b]
    ntpServers: list[NonEmptyStr] = []
    dnsServers: list[IPv4] = []


class MaintenanceWindow(Strict):
    days: Annotated[list[Weekday], Field(min_length=1)]
    start: TimeOfDay
    duration: Duration


class SiteSpec(Strict):
    timezone: TimeZone = "UTC"
    network: Network = Network()
    caCerts: list[Annotated[str, AfterValidator(_pem)]] = []
    maintenanceWindows: list[MaintenanceWindow] = []
    variables: dict[str, Scalar] = {}


class SiteMetadata(Strict):
    name: Name
    labels: Labels = {}


class Site(Strict):
    apiVersion: Literal["edgefleet.dev/v1"]
    kind: Literal["Site"]
    metadata: SiteMetadata
    spec: SiteSpec = SiteSpec()


ApplianceType = Literal["virtual-machine", "bare-metal-libvirt", "bare-metal"]


class ApplianceSpec(Strict):
    type: ApplianceType
    arch: Literal["amd64", "arm64"] = "amd64"
    # the appliance's age public key: secrets sealed for it open on this appliance alone
    ageRecipient: AgeRecipient | None = None


class ApplianceMetadata(Strict):
    name: Name
    tags: Labels = {}


class Appliance(Strict):
    apiVersion: Literal["edgefleet.dev/v1"]
    kind: Literal["Appliance"]
    metadata: ApplianceMetadata
    spec: ApplianceSpec
