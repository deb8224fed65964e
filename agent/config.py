"""The agent's configuration file (``/etc/edgefleet/agent.yaml``), written by
``edge-installer``."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from agent.errors import AgentError

DEFAULT_CONFIG = Path("/etc/edgefleet/agent.yaml")
AGE_KEY_NAME = "age-key.txt"  # the appliance's age identity, in the data folder


class ConfigError(AgentError):
    """The configuration file is missing or wrong; the message is one line."""


class DirectBootConfig(BaseModel):
    """Virtual machines boot this kernel and initrd (files on the appliance, readable by the
    hypervisor) instead of their root disk's boot loader: node images without one."""

    model_config = ConfigDict(extra="forbid")

    kernel: str
    initrd: str
    cmdline: str = "console=ttyS0"

    @field_validator("kernel", "initrd")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not os.path.isabs(value) or "\x00" in value:
            raise ValueError("must be an absolute path")
        return value


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    applianceId: str
    ip: str
    mode: Literal["online", "offline"] = "online"
    apiUrl: str | None = None
    tokenFile: str = "/etc/edgefleet/agent-token"
    dataDir: str = "/var/lib/edgefleet"
    isVirtual: bool = False
    sshKey: str | None = None
    sshUser: str | None = None
    virtSock: str = "/var/run/libvirt/libvirt-sock"
    libvirtUri: str | None = None  # any libvirt URI; wins over the socket and ssh
    libvirtDomainType: str = "kvm"  # qemu: software emulation, where KVM is not available
    libvirtCpuMode: str | None = "host-passthrough"
    libvirtDirectBoot: DirectBootConfig | None = None
    podCIDR: str | None = None
    serviceCIDR: str | None = None
    httpProxy: str | None = None
    httpsProxy: str | None = None
    noProxy: str | None = None
    caCert: str | None = None  # PEM file trusted for the reconciler's TLS
    dockerUrl: str | None = None
    defaultImage: str | None = None
    privileged: bool = True  # k3s in a container needs it
    serverCommand: list[str] | None = ["server"]  # None: the node image's own command
    agentCommand: list[str] | None = ["agent"]
    pull: Literal["if-missing", "never"] = "if-missing"
    labels: dict[str, str] = {}  # extra labels on everything the agent creates
    serverKey: str | None = None  # the reconciler's Ed25519 public key(s), PEM: signed states
    bundleKey: str | None = None  # a key for offline bundles other than serverKey
    insecureHttp: bool = False  # labs only: an http:// apiUrl, whose traffic anyone can read
    registrationTokenFile: str | None = None  # bootstrap token, if the agent registers itself
    ageKeyFile: str | None = None  # age identity that opens secrets (default: DATA_DIR/age-key.txt)

    def age_key(self) -> Path:
        return Path(self.ageKeyFile) if self.ageKeyFile else Path(self.dataDir) / AGE_KEY_NAME

    def save(self, path: Path) -> None:
        """Write the file atomically, mode 0600 (it names the agent's keys and tokens)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        yaml = YAML(typ="safe")
        yaml.default_flow_style = False
        text = io.StringIO()
        yaml.dump(self.model_dump(), text)
        write_private(path, text.getvalue().encode())


def load_config(path: Path) -> AgentConfig:
    try:
        data = YAML(typ="safe").load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    except YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``, mode 0600: a temporary file beside it,
    fsync, rename."""
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
