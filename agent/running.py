"""``edgefleet-agent run``: build the agent's collaborators from its configuration and run
it online (the sync loop against the reconciler) or offline (one signed bundle, status to a
file for ``edgefleet status import``)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .applying import apply_state
from .bundles import load_public_key, verify
from .clocks import SystemClock
from .config import AgentConfig
from .contract import DesiredState
from .drivers import Driver
from .drivers.docker import DEFAULT_IMAGE, DockerDriver, DockerSettings, connect
from .inventory import Inventory
from .link import AgentLink, LinkSettings
from .reporting import status_report
from .results import ApplyResult
from .syncing import SyncLoop, SyncSettings

log = logging.getLogger(__name__)


@dataclass
class Agent:
    """What one pass needs: the inventory and the driver."""

    config: AgentConfig
    inventory: Inventory
    driver: Driver

    def apply(self, state: DesiredState) -> ApplyResult:
        return apply_state(state, driver=self.driver, inventory=self.inventory, clock=SystemClock())


@contextmanager
def open_agent(config: AgentConfig) -> Iterator[Agent]:
    """The inventory and the driver the configuration names: libvirt on an appliance that
    hosts virtualized clusters (``isVirtual``), Docker otherwise."""
    if config.isVirtual:
        with _libvirt(config) as driver, Inventory.open(Path(config.dataDir)) as inventory:
            yield Agent(config, inventory, driver)
        return
    settings = DockerSettings(
        default_image=config.defaultImage or DEFAULT_IMAGE,
        server_command=tuple(config.serverCommand) if config.serverCommand is not None else None,
        agent_command=tuple(config.agentCommand) if config.agentCommand is not None else None,
        privileged=config.privileged,
        pull=config.pull,
        extra_labels=config.labels,
    )
    client = connect(config.dockerUrl)
    try:
        with Inventory.open(Path(config.dataDir)) as inventory:
            yield Agent(config, inventory, DockerDriver(client=client, settings=settings))
    finally:
        client.close()


@contextmanager
def _libvirt(config: AgentConfig) -> Iterator[Driver]:
    # libvirt-python is an optional extra: imported only where a driver is wanted
    from .drivers.libvirt import LibvirtDriver, LibvirtSettings, connect, connection_uri

    local = Path(config.virtSock).exists()
    uri = connection_uri(
        uri=config.libvirtUri,
        socket=config.virtSock,
        ssh_host=None if local or not config.sshUser else config.ip,
        ssh_user=config.sshUser,
        ssh_key=config.sshKey,
    )
    connection = connect(uri)
    try:
        test_driver = uri.startswith("test:")
        settings = LibvirtSettings(
            domain_type="test" if test_driver else config.libvirtDomainType,
            cpu_mode=None if test_driver else config.libvirtCpuMode,
        )
        if config.defaultImage:
            settings = dataclasses.replace(settings, default_image=config.defaultImage)
        yield LibvirtDriver(connection=connection, settings=settings)
    finally:
        connection.close()


def run_online(config: AgentConfig, *, once: bool = False, wait: float = 30.0) -> int:
    """The sync loop until SIGTERM/SIGINT (or one pass with ``once``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    token = os.environ.get("EDGEFLEET_REGISTRATION_TOKEN")
    if token is None and config.registrationTokenFile:
        token = Path(config.registrationTokenFile).read_text().strip()
    with open_agent(config) as agent, AgentLink(LinkSettings.from_config(config)) as link:
        loop = SyncLoop(
            settings=SyncSettings(
                appliance=config.applianceId,
                token_file=Path(config.tokenFile),
                hostname=os.uname().nodename,
                wait=wait,
                registration_token=token,
            ),
            link=link,
            apply=agent.apply,
            last_good=agent.inventory.last_good_state(),
        )
        if once:
            loop.step()
            return 0 if loop.applied is not None or loop.state is None else 1
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: loop.stop.set())
        loop.run()
    return 0


def run_offline(config: AgentConfig, *, bundle: Path, status_out: Path, key: Path) -> int:
    """Verify and apply one bundle; write the status report for ``edgefleet status import``."""
    state = verify(bundle.read_bytes(), load_public_key(key))
    with open_agent(config) as agent:
        result = agent.apply(state)
    report = status_report(result, applied=result.digest if result.ok else None)
    document = {
        "appliance": config.applianceId,
        "revision": state.revision,
        "report": report.model_dump(mode="json", exclude_none=True),
    }
    status_out.parent.mkdir(parents=True, exist_ok=True)
    status_out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return 0 if result.ok else 1
