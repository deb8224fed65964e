"""The Docker driver: a containerized cluster's nodes as containers on one bridge network, or,
for a cluster that spans appliances, in the appliance's own network (host networking: its
nodes on other appliances reach it at the appliance's address).

A node is a container ``<node>-<generation>`` on a named data volume that outlives it (a
restart keeps the node's data), its user data in a file, what it must read (its k3s
configuration files, the site's CA certificates in its trust store, the proxies in its
environment, its profiles' tags as labels: docs/node-images.md), its join in a k3s
configuration drop-in (and k3s's environment variables) and, on control-plane nodes, the
cluster's manifests in the k3s auto-deploy folder. Everything carries ``edgefleet.*`` labels,
and :meth:`DockerDriver.observe` finds what exists by them.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.utils import parse_repository_tag

from agent.contract import Mode
from agent.drivers import NodeLaunch, NodeNotRunning, Observation, ObservedContainer, ObservedVolume
from agent.drivers.docker.errors import (
    Conflict,
    EngineFailed,
    EngineRefused,
    EngineUnreachable,
    ImageMissing,
    NameTaken,
    absent_is_fine,
    explain,
    mapped,
)
from agent.naming import ManifestWrite

DEFAULT_IMAGE = "rancher/k3s:v1.30.6-k3s1"

APPLIANCE = "edgefleet.appliance"
CLUSTER = "edgefleet.cluster"
POOL = "edgefleet.pool"
NODE = "edgefleet.node"
ROLE = "edgefleet.role"
REVISION = "edgefleet.revision"
DIGEST = "edgefleet.digest"
SPEC = "edgefleet.spec"
CONTAINER = "edgefleet.container"


@dataclass(frozen=True)
class DockerSettings:
    """How nodes are run. A command of None runs the image's own command."""

    default_image: str = DEFAULT_IMAGE
    server_command: tuple[str, ...] | None = ("server",)
    agent_command: tuple[str, ...] | None = ("agent",)
    privileged: bool = True  # k3s in a container needs it
    pull: Literal["if-missing", "never"] = "if-missing"
    data_path: str = "/var/lib/rancher/k3s"
    manifests_path: str = "/var/lib/rancher/k3s/server/manifests"
    user_data_path: str = "/etc/edgefleet/user-data.yaml"
    # the site's CA certificates: Go (k3s, its containerd) reads every file of /etc/ssl/certs
    ca_path: str = "/etc/ssl/certs/edgefleet-{index}.pem"
    join_path: str = "/etc/rancher/k3s/config.yaml.d/10-join.yaml"
    tmpfs: Mapping[str, str] = field(default_factory=lambda: {"/run": "", "/var/run": ""})
    extra_labels: Mapping[str, str] = field(default_factory=dict)


def connect(base_url: str | None = None, *, timeout: int = 60) -> docker.DockerClient:
    """A client for the engine at ``base_url`` (None: DOCKER_HOST or the default socket)."""
    try:
        if base_url is None:
            return docker.DockerClient.from_env(timeout=timeout)
        return docker.DockerClient(base_url=base_url, timeout=timeout)
    except DockerException as e:
        raise EngineUnreachable(f"docker engine at {base_url or 'default'}: {e}") from e


def container_state(client: docker.DockerClient, container: str) -> str | None:
    """The engine's word for a container's state, None when it does not exist."""
    with mapped(f"inspect {container}"):
        try:
            return str(client.api.inspect_container(container)["State"]["Status"])
        except NotFound:
            return None


class DockerDriver:
    def __init__(self, *, client: docker.DockerClient, settings: DockerSettings) -> None:
        self._client = client
        self._settings = settings

    @property
    def mode(self) -> Mode:
        return "containerized"

    @property
    def default_image(self) -> str:
        return self._settings.default_image

    # -- observing -------------------------------------------------------------------------

    def observe(self, *, appliance: str) -> Observation:
        selector: dict[str, str | list[str] | bool] = {"label": [f"{APPLIANCE}={appliance}"]}
        with mapped("observe"):
            listed = self._client.containers.list(all=True, sparse=True, filters=selector)
            networks = self._client.networks.list(filters=selector)
            volumes = self._client.volumes.list(filters=selector)
        containers = {}
        for item in listed:
            labels = item.attrs.get("Labels") or {}
            name = item.attrs["Names"][0].lstrip("/")
            containers[name] = ObservedContainer(
                name=name,
                cluster=labels.get(CLUSTER, ""),
                pool=labels.get(POOL, ""),
                node=labels.get(NODE, ""),
                role=labels.get(ROLE, ""),
                spec=labels.get(SPEC, ""),
                state=item.attrs.get("State", ""),
                volumes=tuple(
                    str(m["Name"])
                    for m in item.attrs.get("Mounts") or []
                    if m.get("Type") == "volume" and m.get("Name")
                ),
            )
        manifests = {
            name: self._read_manifests(name)
            for name, container in containers.items()
            if container.role == "control-plane"
        }
        return Observation(
            networks={
                str(n.attrs["Name"]): (n.attrs.get("Labels") or {}).get(CLUSTER, "")
                for n in networks
            },
            containers=containers,
            volumes={
                v.name: ObservedVolume(
                    name=v.name,
                    cluster=(v.attrs.get("Labels") or {}).get(CLUSTER, ""),
                    container=(v.attrs.get("Labels") or {}).get(CONTAINER, ""),
                    node=(v.attrs.get("Labels") or {}).get(NODE, ""),
                )
                for v in volumes
            },
            manifests=manifests,
        )

    def node_state(self, container: str) -> str | None:
        return container_state(self._client, container)

    # -- networks --------------------------------------------------------------------------

    def ensure_network(self, *, name: str, cluster: str, appliance: str) -> None:
        with mapped(f"create network {name}"):
            try:
                found = self._client.networks.get(name)
            except NotFound:
                self._client.networks.create(
                    name,
                    driver="bridge",
                    check_duplicate=True,
                    labels={APPLIANCE: appliance, CLUSTER: cluster, **self._settings.extra_labels},
                )
                return
        labels = found.attrs.get("Labels") or {}
        if labels.get(APPLIANCE) != appliance or labels.get(CLUSTER) != cluster:
            raise NameTaken(f"network {name} exists and was not made for cluster {cluster}")

    def remove_network(self, name: str) -> None:
        with mapped(f"remove network {name}"), absent_is_fine():
            self._client.api.remove_network(name)

    # -- nodes -----------------------------------------------------------------------------

    def create_node(self, launch: NodeLaunch) -> None:
        self._ensure_image(launch.image)
        settings = self._settings
        command = (
            settings.server_command if launch.role == "control-plane" else settings.agent_command
        )
        labels = {
            **launch.setup.labels,
            APPLIANCE: launch.appliance,
            CLUSTER: launch.cluster,
            POOL: launch.pool,
            NODE: launch.node,
            ROLE: launch.role,
            REVISION: launch.revision,
            DIGEST: launch.digest,
            SPEC: launch.spec,
            **settings.extra_labels,
        }
        limits: dict[str, Any] = {}
        if launch.resources is not None:
            limits["nano_cpus"] = launch.resources.cpu * 1_000_000_000
            limits["mem_limit"] = launch.resources.memoryGiB * 1024**3
            if launch.resources.cpuSet:
                limits["cpuset_cpus"] = launch.resources.cpuSet
        join = launch.join
        files = {settings.user_data_path: launch.user_data.encode()}
        modes: dict[str, int] = {}
        for node_file in launch.setup.files:
            files[node_file.path] = node_file.content.encode()
            modes[node_file.path] = int(node_file.mode, 8)
        for index, cert in enumerate(launch.setup.caCerts):
            path = settings.ca_path.format(index=index)
            files[path] = cert.encode()
            modes[path] = 0o644
        if join is not None:
            files[settings.join_path] = join.config(role=launch.role).encode()
            modes[settings.join_path] = 0o600  # the cluster's join token
        for manifest in launch.manifests:
            path = posixpath.join(settings.manifests_path, manifest.filename)
            files[path] = manifest.content.encode()
        host = join is not None and join.host_network
        network: dict[str, Any] = (
            {"network_mode": "host"}
            if host
            else {
                "network": launch.network,
                "networking_config": {
                    launch.network: self._client.api.create_endpoint_config(aliases=[launch.node])
                },
                "hostname": launch.container,
            }
        )
        with mapped(f"create node {launch.node}"):
            # the node's data volume: made once, used again by the node's later containers
            self._client.volumes.create(
                name=launch.volume,
                labels={
                    APPLIANCE: launch.appliance,
                    CLUSTER: launch.cluster,
                    NODE: launch.node,
                    **settings.extra_labels,
                },
            )
            self._client.containers.create(
                launch.image,
                command=None if command is None else list(command),
                name=launch.container,
                labels=labels,
                environment={
                    **launch.setup.environment,  # the proxies of k3s and its containerd
                    "EDGEFLEET_CLUSTER": launch.cluster,
                    "EDGEFLEET_NODE": launch.node,
                    "EDGEFLEET_ROLE": launch.role,
                    "EDGEFLEET_USER_DATA": settings.user_data_path,
                    "K3S_NODE_NAME": launch.node,
                    # k3s reads these too: the token every node shares, and the server a
                    # joining node registers with (or, for the first server, to start)
                    **(join.environment(role=launch.role) if join is not None else {}),
                },
                volumes={launch.volume: {"bind": settings.data_path, "mode": "rw"}},
                privileged=settings.privileged,
                tmpfs=dict(settings.tmpfs),
                # after a reboot the engine starts the nodes again; one stopped by hand stays
                # stopped until the agent notices (the stub's Literal lacks this policy)
                restart_policy=cast(Any, {"Name": "unless-stopped"}),
                detach=True,
                **network,
                **limits,
            )
            self._client.api.put_archive(launch.container, "/", _archive(files, modes))

    def start_node(self, container: str) -> None:
        with mapped(f"start {container}"):
            self._client.api.start(container)

    def remove_node(self, *, container: str, volumes: Sequence[str] = ()) -> None:
        with mapped(f"remove {container}"), absent_is_fine():
            self._client.api.remove_container(container, force=True)
        for volume in volumes:
            self.remove_volume(volume)

    def remove_volume(self, name: str) -> None:
        with mapped(f"remove volume {name}"), absent_is_fine():
            self._client.api.remove_volume(name, force=True)

    # -- manifests -------------------------------------------------------------------------

    def write_manifests(self, container: str, files: Sequence[ManifestWrite]) -> None:
        archive = _archive(
            {
                posixpath.join(self._settings.manifests_path, f.filename): f.content.encode()
                for f in files
            }
        )
        with mapped(f"write manifests to {container}"):
            self._client.api.put_archive(container, "/", archive)

    def remove_manifests(self, container: str, filenames: Sequence[str]) -> None:
        paths = [posixpath.join(self._settings.manifests_path, name) for name in filenames]
        if self.node_state(container) != "running":
            raise NodeNotRunning(f"cannot remove manifests from {container}: not running")
        with mapped(f"remove manifests from {container}"):
            exec_id = str(self._client.api.exec_create(container, ["rm", "-f", "--", *paths])["Id"])
            output = self._client.api.exec_start(exec_id)
            code = self._client.api.exec_inspect(exec_id)["ExitCode"]
        if code != 0:
            text = output.decode(errors="replace").strip()[:200]
            raise EngineRefused(f"removing manifests from {container} failed ({code}): {text}")

    # -- internals -------------------------------------------------------------------------

    def _ensure_image(self, image: str) -> None:
        with mapped(f"look up image {image}"):
            try:
                self._client.images.get(image)
                return
            except ImageNotFound as e:
                if self._settings.pull == "never":
                    raise ImageMissing(
                        f"image {image} is not on the engine and pulling is off"
                    ) from e
        repository, tag = parse_repository_tag(image)
        try:
            self._client.api.pull(repository, tag=tag or "latest")
        except APIError as e:
            if e.is_server_error():  # the registry did not answer: try again later
                raise EngineFailed(f"pull image {image}: {explain(e)}") from e
            raise ImageMissing(f"image {image} cannot be pulled: {explain(e)}") from e
        except (requests.RequestException, DockerException) as e:
            raise EngineUnreachable(f"pull image {image}: docker engine unreachable: {e}") from e

    def _read_manifests(self, container: str) -> dict[str, str]:
        """File name -> sha256 of the files directly in the auto-deploy folder."""
        try:
            with mapped(f"read manifests of {container}"), absent_is_fine():
                stream, _ = self._client.api.get_archive(container, self._settings.manifests_path)
                data = b"".join(stream)
                found: dict[str, str] = {}
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    for member in tar:
                        parts = member.name.split("/")
                        extracted = tar.extractfile(member) if member.isfile() else None
                        if len(parts) == 2 and extracted is not None:
                            found[parts[1]] = hashlib.sha256(extracted.read()).hexdigest()
                return found
        except Conflict:
            pass  # the container is being removed: it holds nothing of ours any more
        return {}


def _archive(files: Mapping[str, bytes], modes: Mapping[str, int] | None = None) -> bytes:
    """A tar of absolute paths, extracted at "/"; the engine creates missing folders. A file
    is 0600 unless ``modes`` says otherwise (manifests and user data may carry credentials)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = (modes or {}).get(path, 0o600)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
