"""The agent's collaborators built from its configuration (driver, inventory, day-2 runner,
link), and ``edgefleet-agent run`` online or offline."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from agent.apply.admission import InstalledNetwork, parse_state
from agent.apply.applying import apply_state
from agent.apply.inventory import STATE_NAME, Inventory
from agent.apply.passes import ApplyResult
from agent.clocks import SystemClock
from agent.config import AgentConfig, ConfigError
from agent.contract import DesiredState
from agent.daytwo.operations import OperationError, Operations
from agent.daytwo.patching import RebootGate
from agent.daytwo.schedules.scheduler import Scheduler
from agent.drivers import Driver
from agent.drivers.datavolumes import Volumes
from agent.drivers.docker import DEFAULT_IMAGE, DockerDriver, DockerSettings, connect
from agent.drivers.docker.datavolumes import DockerVolumes
from agent.drivers.docker.nodes import DockerNodes
from agent.drivers.nodes import Host
from agent.link.bundles import BundleError, BundleLedger, open_bundle
from agent.link.client import AgentLink, LinkSettings
from agent.link.leases import LeaseGate
from agent.link.reports import status_report
from agent.link.syncing import SyncLoop, SyncSettings, read_token
from agent.signatures import load_public_keys

log = logging.getLogger(__name__)


@dataclass
class Agent:
    """What one pass needs: the inventory and the driver."""

    config: AgentConfig
    inventory: Inventory
    driver: Driver
    client: docker.DockerClient | None = None  # the engine of containerized nodes
    connection: Any = None  # the libvirt connection of virtualized nodes

    def apply(self, state: DesiredState) -> ApplyResult:
        return apply_state(
            state,
            driver=self.driver,
            inventory=self.inventory,
            clock=SystemClock(),
            age_key=self.config.age_key(),
            network=InstalledNetwork(self.config.podCIDR, self.config.serviceCIDR),
            node_ip=self.config.ip,
        )


@contextmanager
def open_agent(config: AgentConfig) -> Iterator[Agent]:
    """The inventory and the driver the configuration names: libvirt on an appliance that
    hosts virtualized clusters (``isVirtual``), Docker otherwise."""
    if config.isVirtual:
        with _libvirt(config) as (driver, connection):
            with Inventory.open(Path(config.dataDir)) as inventory:
                yield Agent(config, inventory, driver, connection=connection)
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
            yield Agent(config, inventory, DockerDriver(client=client, settings=settings), client)
    finally:
        client.close()


@contextmanager
def _libvirt(config: AgentConfig) -> Iterator[tuple[Driver, Any]]:
    # libvirt-python is an optional extra: imported only where a driver is wanted
    from agent.drivers.libvirt import (
        DirectBoot,
        LibvirtDriver,
        LibvirtSettings,
        connect,
        connection_uri,
    )

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
        if (boot := config.libvirtDirectBoot) is not None:
            settings = dataclasses.replace(
                settings, boot=DirectBoot(boot.kernel, boot.initrd, boot.cmdline)
            )
        if config.defaultImage:
            settings = dataclasses.replace(settings, default_image=config.defaultImage)
        yield LibvirtDriver(connection=connection, settings=settings), connection
    finally:
        connection.close()


def day_two(
    agent: Agent,
    current: Callable[[], DesiredState | None],
    *,
    gate: RebootGate | None = None,
) -> Operations | None:
    """The patch, scan and backup runner of the appliance's nodes: Docker containers, or
    libvirt domains reached through their guest agents (None for libvirt's test driver,
    whose domains have no guest agent). ``gate``: the reconciler's reboot lease."""
    if agent.client is not None:
        places = _docker_day_two(agent.config, agent.client)
        return _operations(agent.config, places, current, gate)
    if agent.connection is not None and not str(agent.connection.getURI()).startswith("test:"):
        places = _libvirt_day_two(agent.config, agent.connection)
        return _operations(agent.config, places, current, gate)
    return None


def _docker_day_two(config: AgentConfig, client: docker.DockerClient) -> tuple[Host, Volumes]:
    nodes = DockerNodes(client=client, appliance=config.applianceId, clock=SystemClock())
    return nodes, DockerVolumes(nodes=nodes)


def _libvirt_day_two(config: AgentConfig, connection: Any) -> tuple[Host, Volumes]:
    from agent.drivers.libvirt.datavolumes import LibvirtVolumes
    from agent.drivers.libvirt.nodes import LibvirtNodes

    nodes = LibvirtNodes(connection=connection, appliance=config.applianceId, clock=SystemClock())
    return nodes, LibvirtVolumes(nodes=nodes, spool_dir=Path(config.dataDir) / "daytwo" / "spool")


def _operations(
    config: AgentConfig,
    places: tuple[Host, Volumes],
    current: Callable[[], DesiredState | None],
    gate: RebootGate | None = None,
) -> Operations:
    host, volumes = places
    return Operations(
        data_dir=Path(config.dataDir),
        host=host,
        volumes=volumes,
        clock=SystemClock(),
        environ=os.environ,
        current_state=current,
        gate=gate,
    )


def run_online(config: AgentConfig, *, once: bool = False, wait: float = 30.0) -> int:
    """The sync loop until SIGTERM/SIGINT (or one pass with ``once``), with the day-2
    scheduler running the state's patch, scan and backup schedules beside it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    token = os.environ.get("EDGEFLEET_REGISTRATION_TOKEN")
    if token is None and config.registrationTokenFile:
        try:
            token = Path(config.registrationTokenFile).read_text().strip()
        except OSError as e:
            raise ConfigError(f"{config.registrationTokenFile}: {e.strerror}") from e
    with open_agent(config) as agent, AgentLink(LinkSettings.from_config(config)) as link:
        last_good = agent.inventory.last_good_state()
        current: list[DesiredState | None] = [last_good]
        gate = LeaseGate(link=link, token=lambda: read_token(Path(config.tokenFile)) or "")
        operations = day_two(agent, lambda: current[0], gate=gate)
        scheduler = (
            Scheduler(
                data_dir=Path(config.dataDir), clock=SystemClock(), runner=operations.scheduled
            )
            if operations is not None
            else None
        )

        def new_state(state: DesiredState) -> None:
            current[0] = state
            if scheduler is not None:
                scheduler.sync(state)

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
            last_good=last_good,
            on_state=new_state,
            day2=operations.status if operations is not None else None,
        )
        if last_good is not None:
            new_state(last_good)
            if operations is not None:
                operations.on_boot(last_good)
        if once:
            loop.step()
            return 0 if loop.applied is not None or loop.state is None else 1
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: loop.stop.set())
        if scheduler is not None:
            scheduler.run()
        try:
            loop.run()
        finally:
            if scheduler is not None:
                scheduler.close()
    return 0


def run_offline(
    config: AgentConfig,
    *,
    bundle: Path,
    status_out: Path,
    key: Path,
    allow_downgrade: bool = False,
) -> int:
    """Verify and apply one bundle; write the status report for ``edgefleet status import``.
    A bundle older than the one applied last is refused unless ``allow_downgrade``."""
    try:
        data = bundle.read_bytes()
    except OSError as e:
        raise BundleError(f"{bundle}: {e.strerror}") from None
    opened = open_bundle(data, load_public_keys(key), appliance=config.applianceId)
    ledger = BundleLedger(Path(config.dataDir))
    ledger.admit(opened, allow_downgrade=allow_downgrade)
    state = opened.state
    with open_agent(config) as agent:
        # recorded before applying: a bundle that fails half-way is still the newest one seen
        ledger.record(opened)
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


def saved_state(config: AgentConfig) -> DesiredState:
    """The last good state the running agent keeps on disk (read without the inventory's
    lock, which the running agent holds)."""
    path = Path(config.dataDir) / STATE_NAME
    try:
        return parse_state(path.read_bytes())
    except OSError:
        raise OperationError(f"{path}: no desired state applied yet on this appliance") from None


@contextmanager
def operations_for(config: AgentConfig) -> Iterator[Operations]:
    """Day-2 operations on demand, beside (or without) a running agent."""
    current = functools.partial(saved_state, config)
    if config.isVirtual:
        with _libvirt(config) as (_, connection):
            yield _operations(config, _libvirt_day_two(config, connection), current)
        return
    client = connect(config.dockerUrl)
    try:
        yield _operations(config, _docker_day_two(config, client), current)
    finally:
        client.close()
