"""The node-level documents, rendered from ``templates/nodes/``: domain, metadata and volume
XML, and the seed's cloud-init files."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    select_autoescape,
)

from agent.drivers.libvirt.errors import Refused

# templates/nodes/ of the checkout, installed as the data package edgefleet_templates
NODE_TEMPLATES = Path(str(resources.files("edgefleet_templates") / "nodes"))
NAMESPACE = "https://edgefleet.dev/libvirt/1"
SYNC_SCRIPT = "manifests-sync.sh"


@dataclass(frozen=True)
class ManifestRef:
    name: str
    sha256: str


@dataclass(frozen=True)
class SeedRef:
    """The seed volume a node's CD-ROM holds, and the manifests written on it."""

    pool: str
    volume: str
    manifests: tuple[ManifestRef, ...] = ()


@dataclass(frozen=True)
class NodeMetadata:
    """What the domain's ``<edgefleet:node>`` metadata says about it."""

    appliance: str
    cluster: str
    pool: str
    node: str
    role: str
    revision: str
    digest: str
    spec: str
    seed: SeedRef
    labels: tuple[tuple[str, str], ...] = ()  # the profiles' tags, as the node carries them


@dataclass(frozen=True)
class Disk:
    pool: str
    volume: str
    target: str


@dataclass(frozen=True)
class Nic:
    type: str  # "network" or "bridge"
    source: str


@dataclass(frozen=True)
class DirectBoot:
    """Boot a kernel and initrd on the host instead of the root disk's boot loader."""

    kernel: str
    initrd: str
    cmdline: str = "console=ttyS0"


@dataclass(frozen=True)
class Domain:
    name: str
    domain_type: str
    arch: str
    machine: str | None
    cpu_mode: str | None
    vcpus: int
    cpuset: str | None
    memory_gib: int
    disks: tuple[Disk, ...]
    nics: tuple[Nic, ...]
    boot: DirectBoot | None
    node: NodeMetadata


class Templates:
    def __init__(self, folder: Path = NODE_TEMPLATES) -> None:
        self.folder = folder
        self._env = Environment(
            loader=FileSystemLoader(folder),
            autoescape=select_autoescape(enabled_extensions=("xml", "xml.j2")),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def domain(self, domain: Domain) -> str:
        return self._render(
            "libvirt-domain.xml.j2",
            **vars(domain),
            seed=domain.node.seed,
            namespace=NAMESPACE,
        )

    def metadata(self, node: NodeMetadata) -> str:
        return self._render("libvirt-metadata.xml.j2", node=node, namespace=NAMESPACE)

    def seed_disk(self, seed: SeedRef) -> str:
        return self._render("libvirt-seed-disk.xml.j2", seed=seed)

    def volume(self, *, name: str, capacity: int, format: str) -> str:
        return self._render("libvirt-volume.xml.j2", name=name, capacity=capacity, format=format)

    def meta_data(self, *, instance_id: str, hostname: str) -> str:
        return self._render("meta-data.yaml.j2", instance_id=instance_id, hostname=hostname)

    def vendor_data(self, *, hostname: str, role: str) -> str:
        try:
            script = (self.folder / SYNC_SCRIPT).read_text().rstrip("\n")
        except OSError as e:
            raise Refused(f"node template {self.folder / SYNC_SCRIPT}: {e.strerror}") from e
        return self._render("vendor-data.sh.j2", hostname=hostname, role=role, sync_script=script)

    def _render(self, template: str, **values: object) -> str:
        try:
            return self._env.get_template(template).render(**values)
        except TemplateError as e:
            raise Refused(f"node template {self.folder / template}: {e.message}") from e
