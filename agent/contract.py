"""The documents the reconciler and the agent exchange: DesiredState and StatusReport. A
state's digest is the sha256 of its canonical JSON, revision left out, so an untouched site
keeps its digest across commits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    model_serializer,
)

Mode = Literal["virtualized", "containerized"]
Role = Literal["control-plane", "worker"]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeResources(Contract):
    cpu: int
    memoryGiB: int
    rootDiskGiB: int
    dataDiskGiB: int | None = None
    cpuSet: str | None = None


class NodePlacement(Contract):
    networkType: Literal["default", "bridge"]
    networks: list[str]
    imageStoragePool: str
    targetStoragePool: str
    dataStoragePool: str | None = None


class NodeFile(Contract):
    """A file every node of this kind reads, written before the node starts (absolute path,
    octal mode)."""

    path: str
    content: str
    mode: Annotated[str, Field(pattern=r"^0[0-7]{3}$")] = "0600"


class NodeSetup(Contract):
    """What a node image must read (docs/node-images.md), the same in both modes: the k3s
    configuration files, the site's CA certificates for the node's trust store, the
    environment of k3s and its containerd (proxies), and the labels the node carries as a
    container or a domain (the profiles' tags). Virtual nodes get it through their cloud-init
    user data, which the os pack renders from it; containers get it from the Docker driver."""

    files: list[NodeFile] = []
    caCerts: list[str] = []
    environment: dict[str, str] = {}
    labels: dict[str, str] = {}


class Node(Contract):
    """One Kubernetes node: a container (containerized) or a virtual machine (virtualized).
    Everything but the name is the node's spec: a change to any of it replaces the node."""

    name: str
    pool: str
    role: Role
    appliance: str
    workerCapable: bool
    image: str | None  # None: the agent's configured default image
    resources: NodeResources | None = None
    placement: NodePlacement | None = None
    userData: str
    setup: NodeSetup = NodeSetup()


class ClusterServer(Contract):
    """A control-plane node of a cluster that spans appliances, and the appliance it runs on."""

    node: str
    appliance: str


class Pool(Contract):
    name: str
    controlPlane: bool
    size: int
    updateStrategy: Literal["expand-first", "contract-first"]


class PackRef(Contract):
    name: str
    version: str
    layer: Literal["os", "k8s", "cni", "csi", "addon"]


class ManifestFile(Contract):
    """One manifest for the cluster's auto-deploy folder. ``encryption: sops``: ``content`` is
    a SOPS document (age) that only the agent opens, just before it writes the file; the
    field is left out of the JSON when not set, so plain manifests keep their digests."""

    layer: str
    pack: str
    name: str
    content: str
    encryption: Literal["sops"] | None = None

    @model_serializer(mode="wrap")
    def _set_fields_only(self, serialize: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = serialize(self)
        if dumped.get("encryption") is None:
            dumped.pop("encryption", None)
        return dumped


# -- schedules: one parameters model per kind ---------------------------------------------

ScanType = Literal["configuration", "penetration", "conformance"]
ScanToolName = Literal["kube-bench", "kube-hunter", "sonobuoy"]
# which tool runs which scan: the reconciler names it in each scan schedule, the agent runs it
SCAN_TOOLS: Final[Mapping[ScanType, ScanToolName]] = MappingProxyType(
    {"configuration": "kube-bench", "penetration": "kube-hunter", "conformance": "sonobuoy"}
)


class PatchParameters(Contract):
    onBoot: bool = False
    rebootIfRequired: bool = False


class ScanParameters(Contract):
    scan: ScanType
    tool: ScanToolName


class BackupLocation(Contract):
    """A folder (``file``) or an S3 bucket (``s3``); fields not set are left out of the JSON,
    as the reconciler renders them."""

    name: str
    provider: Literal["file", "s3"]
    path: str | None = None
    bucket: str | None = None
    endpoint: str | None = None
    region: str | None = None
    credentialsRef: str | None = None  # EDGEFLEET_-prefixed environment variables, never a secret
    caCert: str | None = None

    @model_serializer(mode="wrap")
    def _set_fields_only(self, serialize: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = serialize(self)
        return {key: value for key, value in dumped.items() if value is not None}


class BackupParameters(Contract):
    location: BackupLocation
    prefix: str = ""  # empty: the cluster's name
    expiryHours: int | None = None  # None: kept until removed by hand
    namespaces: list[str] = []
    includeClusterResources: Literal["always", "never", "auto"] = "auto"


class ScheduleBase(Contract):
    kind: str
    name: str
    cron: str
    timezone: str


class PatchSchedule(ScheduleBase):
    kind: Literal["patch"] = "patch"
    parameters: PatchParameters = PatchParameters()


class ScanSchedule(ScheduleBase):
    kind: Literal["scan"] = "scan"
    parameters: ScanParameters


class BackupSchedule(ScheduleBase):
    kind: Literal["backup"] = "backup"
    parameters: BackupParameters


Schedule = Annotated[PatchSchedule | ScanSchedule | BackupSchedule, Field(discriminator="kind")]


class MaintenanceWindow(Contract):
    days: list[str]
    start: str
    duration: str


class ClusterNetwork(Contract):
    """The cluster's network as every node gets it, from one place: the Cluster's
    ``spec.config``. The agent checks it against the CIDRs it was installed with."""

    podCIDR: str = "10.42.0.0/16"
    serviceCIDR: str = "10.43.0.0/16"
    clusterDNS: str = "10.43.0.10"
    clusterDomain: str = "cluster.local"


class ClusterState(Contract):
    """The part of a cluster one appliance runs. A cluster that spans appliances also names
    every member appliance (``appliances``) and every control-plane node in the order the
    cluster forms (``servers``: the first starts it); both are left out of the JSON when
    empty, so a cluster on one appliance keeps its digest."""

    name: str
    mode: Mode
    phase: Literal["present", "absent"] = "present"
    vip: str | None = None
    network: ClusterNetwork = ClusterNetwork()
    packs: list[PackRef]
    pools: list[Pool]
    nodes: list[Node]
    manifests: list[ManifestFile]
    schedules: list[Schedule]
    maintenanceWindows: list[MaintenanceWindow] = []
    timezone: str
    appliances: list[str] = []
    servers: list[ClusterServer] = []

    @model_serializer(mode="wrap")
    def _set_fields_only(self, serialize: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = serialize(self)
        for key in ("appliances", "servers"):
            if not dumped.get(key):
                dumped.pop(key, None)
        return dumped

    @property
    def spans_appliances(self) -> bool:
        return len(self.appliances) > 1


class ClusterJoin(Contract):
    """How this appliance's nodes join a cluster: the cluster's join token, made by the
    reconciler and served only to its member appliances, and the URL of an existing server
    (the VIP, or the first server's appliance address; None while it is not known yet).
    ``init``: the cluster's first server starts the cluster (it has not formed yet, or has no
    other server to join). Never part of the digest: it comes from the reconciler's store,
    not from Git."""

    cluster: str
    token: str = Field(repr=False)
    server: str | None = None
    init: bool = True


class DesiredState(Contract):
    appliance: str
    site: str
    revision: str
    digest: str
    clusters: list[ClusterState]
    # added by the reconciler when it serves the state (signed with it), outside the digest
    join: list[ClusterJoin] = []

    @model_serializer(mode="wrap")
    def _set_fields_only(self, serialize: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = serialize(self)
        if not dumped.get("join"):
            dumped.pop("join", None)
        return dumped

    def content(self) -> dict[str, Any]:
        """Everything the digest covers."""
        return self.model_dump(mode="json", exclude={"revision", "digest", "join"})

    def computed_digest(self) -> str:
        return digest_of(self.content())

    def canonical_json(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    def etag(self) -> str:
        """What the reconciler tags the served state with: the digest, and a fingerprint of
        the join section when there is one (it changes without the digest)."""
        return served_etag(self.digest, self.join)

    def joining(self, cluster: str) -> ClusterJoin | None:
        return next((j for j in self.join if j.cluster == cluster), None)


def schedule_from(value: Any) -> Schedule:
    """A schedule read back from its JSON (``model_dump(mode="json")``)."""
    return _SCHEDULE.validate_python(value)


_SCHEDULE: TypeAdapter[Schedule] = TypeAdapter(Schedule)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def served_etag(digest: str, join: list[ClusterJoin]) -> str:
    """``digest``, or ``digest+<fingerprint of join>``: a new token or server address makes a
    new tag although the digest stays."""
    if not join:
        return digest
    body = canonical_json([j.model_dump(mode="json") for j in join])
    return f"{digest}+{hashlib.sha256(body).hexdigest()[:16]}"


def etag_digest(etag: str) -> str:
    """The digest part of a served state's tag."""
    return etag.split("+", 1)[0]


def digest_of(content: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(content)).hexdigest()


def seal(*, appliance: str, site: str, revision: str, clusters: list[ClusterState]) -> DesiredState:
    """A DesiredState with its digest filled in."""
    return sealed(appliance=appliance, site=site, revision=revision, clusters=clusters)[0]


def sealed(
    *,
    appliance: str,
    site: str,
    revision: str,
    clusters: list[ClusterState],
    encode: Callable[[Any], bytes] = canonical_json,
) -> tuple[DesiredState, bytes]:
    """:func:`seal`, and the canonical JSON its digest is the sha256 of (what the
    reconciler stores, made once). ``encode``: a faster writer of the same bytes."""
    draft = DesiredState(
        appliance=appliance, site=site, revision=revision, digest="", clusters=clusters
    )
    content = encode(draft.content())
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    return draft.model_copy(update={"digest": digest}), content


# -- status reports (agent → reconciler, POST /v1/status) ------------------------------------
# Sizes are bounded so a report cannot grow the reconciler's store without limit.

ClusterPhase = Literal[
    "Pending", "Provisioning", "Running", "Deleting", "Deleted", "Aborted", "Error"
]
NodePhase = Literal["Pending", "Provisioning", "Running", "Deleting", "Deleted", "Error"]
TaskState = Literal["pending", "running", "done", "failed"]

Text = Annotated[str, Field(max_length=2000)]
ShortName = Annotated[str, Field(min_length=1, max_length=253)]
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]


class TaskStatus(Contract):
    """One provisioning step (create a node, apply manifests, ...)."""

    name: ShortName
    state: TaskState
    progress: Annotated[int, Field(ge=0, le=100)] = 0
    message: Text = ""


class NodeStatus(Contract):
    name: ShortName
    phase: NodePhase
    message: Text = ""


class ScanStatus(Contract):
    """The last run of one scan type (configuration, penetration, conformance)."""

    scan: ShortName
    tool: ShortName
    state: ShortName  # done | failed | postponed
    at: datetime
    passed: int = 0
    warned: int = 0
    failed: int = 0
    findings: Annotated[list[Text], Field(max_length=20)] = []
    error: Text = ""
    # what produced the counts: the tool's version, the benchmark (or mode) it judged against
    toolVersion: Annotated[str, Field(max_length=64)] = ""
    benchmark: Annotated[str, Field(max_length=253)] = ""
    errored: int = 0  # checks the tool could not run: in none of the counts
    errors: Annotated[list[Text], Field(max_length=20)] = []


class PolicyRun(Contract):
    """The last OS patch of a node, or the last backup of a cluster."""

    name: ShortName  # the node, or the backup ID
    state: ShortName
    at: datetime
    detail: Text = ""  # the patched version, the backup's location


class ClusterStatus(Contract):
    name: ShortName
    phase: ClusterPhase
    nodes: Annotated[list[NodeStatus], Field(max_length=64)] = []
    tasks: Annotated[list[TaskStatus], Field(max_length=256)] = []
    message: Text = ""
    scans: Annotated[list[ScanStatus], Field(max_length=8)] = []
    patches: Annotated[list[PolicyRun], Field(max_length=64)] = []
    backup: PolicyRun | None = None


class ApplyError(Contract):
    """Applying ``digest`` failed; the agent keeps running what it ran before."""

    digest: Digest
    message: Text


class ReportedEvent(Contract):
    key: Annotated[str, Field(min_length=1, max_length=128)] | None = None  # resent once
    level: Literal["info", "warning", "error"] = "info"
    message: Text


class StatusReport(Contract):
    appliedDigest: Digest | None = None
    error: ApplyError | None = None
    health: Literal["healthy", "unhealthy"]
    clusters: Annotated[list[ClusterStatus], Field(max_length=32)] = []
    events: Annotated[list[ReportedEvent], Field(max_length=256)] = []
    agentVersion: Annotated[str, Field(max_length=64)] | None = None
