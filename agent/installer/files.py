"""What the installer writes under its target root, with which mode, and how it is taken
away again: one list, so that ``--dry-run`` prints, install writes and ``--uninstall`` removes
the same files. Called by :func:`agent.installer.main`."""

from __future__ import annotations

import importlib.resources
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ruamel.yaml import YAML

from agent.apply.inventory import JOIN_SECRET_NAME, join_secret, private_folder
from agent.config import AGE_KEY_NAME, AgentConfig, write_private
from agent.installer.flags import Request, redacted
from agent.secrets.keys import Identity, generate, identity_file, read_identities
from agent.signatures import key_id, load_public_keys

UNIT_NAME = "edgefleet-agent.service"  # deploy/ of the project, the data package edgefleet_deploy
UNIT = f"/etc/systemd/system/{UNIT_NAME}"
CONFIG = "/etc/edgefleet/agent.yaml"
ENVIRONMENT = "/etc/edgefleet/agent.env"
CREDENTIALS = "/etc/edgefleet/credentials.env"
SHIPPED_EXECUTABLE = "/usr/local/bin/edgefleet-agent"
CREDENTIALS_TEMPLATE = """\
# The credentials of the fleet's S3 backup locations, read by the edgefleet agent (its unit's
# EnvironmentFile). For a location with credentialsRef: EDGEFLEET_ACME_S3, set:
#   EDGEFLEET_ACME_S3_ACCESS_KEY_ID=...
#   EDGEFLEET_ACME_S3_SECRET_ACCESS_KEY=...
# then: systemctl restart edgefleet-agent. edge-installer keeps this file when it runs again.
"""


@dataclass(frozen=True)
class Planned:
    """One file of the installation: its path in the root, its mode, and its content (None:
    made when written, such as a new key), or a folder."""

    path: str
    mode: int
    content: bytes | None = None
    folder: bool = False
    secret: bool = False  # never printed
    keep: bool = False  # an existing one is the operator's, and stays
    note: str = ""


def inside(target: Path, path: str) -> Path:
    return target / path.lstrip("/")


def plan(request: Request, executable: str) -> list[Planned]:
    """Every file and folder an install writes, in the order it writes them."""
    config = request.config
    files = [
        Planned("/etc/edgefleet", 0o700, folder=True),
        Planned(CONFIG, 0o600, _config_yaml(config)),
        Planned(ENVIRONMENT, 0o600, agent_environment(config).encode()),
        Planned(CREDENTIALS, 0o600, CREDENTIALS_TEMPLATE.encode(), keep=True),
    ]
    if request.ca is not None and config.caCert:
        files.append(Planned(config.caCert, 0o644, request.ca.read_bytes()))
    if request.server_key is not None and config.serverKey:
        files.append(Planned(config.serverKey, 0o644, request.server_key.read_bytes()))
    files += [
        Planned(UNIT, 0o644, agent_unit(executable).encode()),
        Planned(config.dataDir, 0o700, folder=True),
        Planned(
            f"{config.dataDir}/{JOIN_SECRET_NAME}",
            0o600,
            secret=True,
            keep=True,
            note="32 random bytes: the clusters' join tokens",
        ),
        Planned(
            f"{config.dataDir}/{AGE_KEY_NAME}",
            0o600,
            secret=True,
            keep=request.identities is None,
            note="the appliance's age identity",
        ),
    ]
    if config.mode == "online":
        files.append(
            Planned(config.tokenFile, 0o600, secret=True, note="the agent token, on registration")
        )
    return files


# what --uninstall removes besides the agent token (the operator's credentials and the data
# only with --purge)
REMOVED = (UNIT, CONFIG, ENVIRONMENT, "/etc/edgefleet/ca.pem", "/etc/edgefleet/server-key.pem")


def agent_unit(executable: str) -> str:
    """The shipped unit, running this installation's agent."""
    text = importlib.resources.files("edgefleet_deploy").joinpath(UNIT_NAME).read_text()
    return text.replace(f"ExecStart={SHIPPED_EXECUTABLE} ", f"ExecStart={executable} ", 1)


def agent_environment(config: AgentConfig) -> str:
    """The agent's proxies, in both spellings, for what it runs besides its link (backups to
    S3); 0600, since a proxy URL may carry a password."""
    lines = ["# written by edge-installer: the agent's proxies"]
    for name, value in (
        ("HTTP_PROXY", config.httpProxy),
        ("HTTPS_PROXY", config.httpsProxy),
        ("NO_PROXY", config.noProxy),
    ):
        if value:
            lines += [f"{name}={value}", f"{name.lower()}={value}"]
    return "\n".join(lines) + "\n"


def _config_yaml(config: AgentConfig) -> bytes:
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    text = io.StringIO()
    yaml.dump(config.model_dump(), text)
    return text.getvalue().encode()


def describe(files: list[Planned], target: Path, *, say: Callable[[str], None]) -> None:
    """``--dry-run``: each file with its mode and content (secrets by what they are, proxy
    passwords masked)."""
    for item in files:
        path = inside(target, item.path)
        if item.folder:
            say(f"would make {path}/ ({item.mode:04o})")
            continue
        if item.keep and path.exists():
            say(f"would keep {path} ({item.note or 'it exists'})")
            continue
        say(f"would write {path} ({item.mode:04o}){': ' + item.note if item.note else ''}")
        if item.content is not None and not item.secret:
            for line in item.content.decode(errors="replace").splitlines():
                say(f"    {_masked(line)}")


def _masked(line: str) -> str:
    for word in line.split():
        for part in (word.split("=", 1)[-1], word.split(": ", 1)[-1]):
            if "://" in part and "@" in part:
                line = line.replace(part, redacted(part))
    return line


def write(files: list[Planned], request: Request, *, say: Callable[[str], None]) -> Identity:
    """Write the installation; returns the appliance's age identity."""
    target = request.target
    identity: Identity | None = None
    for item in files:
        path = inside(target, item.path)
        if item.folder:
            private_folder(path) if item.mode == 0o700 else path.mkdir(parents=True, exist_ok=True)
        elif item.path.endswith(f"/{JOIN_SECRET_NAME}"):
            join_secret(path.parent)
        elif item.path.endswith(f"/{AGE_KEY_NAME}"):
            identity = _identity(path, request.identities)
        elif item.content is not None:
            if item.keep and path.exists():
                say(f"kept {path}")
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            write_private(path, item.content)
            os.chmod(path, item.mode)
    assert identity is not None
    say(f"wrote {inside(target, CONFIG)} and the {UNIT_NAME} unit")
    return identity


def _identity(path: Path, given: list[Identity] | None) -> Identity:
    """The given identity, the one the appliance has (a reinstall keeps it, or the secrets
    sealed for it no longer open), or a new one; 0600."""
    if given is None and path.is_file():
        return read_identities(path)[0]
    identities = given or [generate()]
    created = datetime.now(UTC)
    write_private(path, "".join(identity_file(i, created=created) for i in identities).encode())
    return identities[0]


def server_key_ids(target: Path, config: AgentConfig) -> str:
    assert config.serverKey is not None
    return ", ".join(key_id(k) for k in load_public_keys(inside(target, config.serverKey)))


def remove(
    target: Path,
    *,
    purge: bool,
    dry_run: bool,
    config: AgentConfig | None,
    say: Callable[[str], None],
) -> None:
    """Take away what the installer wrote; the data folder and the operator's credentials
    stay unless ``purge``."""
    data = config.dataDir if config else "/var/lib/edgefleet"
    token = config.tokenFile if config else "/etc/edgefleet/agent-token"
    paths = [*REMOVED, token]
    if purge:
        paths.append(CREDENTIALS)
    verb = "would remove" if dry_run else "removed"
    for path in dict.fromkeys(paths):
        found = inside(target, path)
        if found.is_file() or found.is_symlink():
            if not dry_run:
                found.unlink()
            say(f"{verb} {found}")
    folder = inside(target, "/etc/edgefleet")
    if folder.is_dir() and not any(folder.iterdir()) and not dry_run:
        folder.rmdir()
        say(f"removed {folder}/")
    elif folder.is_dir() and not purge:
        say(f"kept {inside(target, CREDENTIALS)} (the backup credentials: --purge removes them)")
    data_folder = inside(target, data)
    if data_folder.is_dir():
        if purge:
            if not dry_run:
                shutil.rmtree(data_folder)
            say(f"{verb} {data_folder}/ (the agent's data)")
        else:
            say(f"kept {data_folder}/ (the agent's data: --purge removes it)")
