"""``edge-installer``: checks its flags and then the appliance (preflight) before it writes
anything, writes the agent's configuration, environment, unit, keys and data folder with
tight modes, registers the appliance in online mode, and enables and starts the service
where systemd runs (else prints the command). ``--dry-run`` prints what it would write,
``--uninstall`` (``--purge``) takes it away. Exit codes: 0 done, 1 a check or the
registration failed, 2 a flag is wrong."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.config import AgentConfig, ConfigError, load_config, write_private
from agent.errors import AgentError
from agent.installer.files import (
    CONFIG,
    UNIT,
    describe,
    inside,
    plan,
    remove,
    server_key_ids,
    write,
)
from agent.installer.flags import FlagError, Removal, Request, build_parser, parse, redacted
from agent.installer.preflight import PreflightFailed, preflight
from agent.installer.service import (
    DISABLE,
    ENABLE,
    ServiceFailed,
    command,
    disable,
    enable,
    reload,
    systemd_runs,
)
from agent.link.client import AgentLink, LinkError, LinkSettings

__all__ = ["FlagError", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        request = parse(sys.argv[1:] if argv is None else argv, parser)
    except FlagError as e:
        _error(str(e), None)
        return 2
    if isinstance(request, Removal):
        return _uninstall(request)
    return _install(request)


def _install(request: Request) -> int:
    config, target = request.config, request.target
    # Preflight: nothing is written unless every check passes
    try:
        executable = preflight(request, say=print)
    except PreflightFailed as e:
        _error(str(e), config)
        return 1
    files = plan(request, executable)

    # Dry run: what would be written, and the service step
    if request.dry_run:
        describe(files, target, say=print)
        if config.mode == "online":
            _service_step(target, dry_run=True)
        return 0

    # Write: configuration, environment, unit, keys, data folder
    try:
        identity = write(files, request, say=print)
    except (AgentError, OSError) as e:
        _error(f"writing the installation: {e}", config)
        return 1
    print(
        f"age recipient of {config.applianceId}: {identity.recipient}\n"
        "  (its spec.ageRecipient in the fleet repository: secrets sealed for it open here)"
    )
    if config.serverKey:
        print(f"states and bundles are trusted when signed by {server_key_ids(target, config)}")
    if config.insecureHttp:
        print("edge-installer: --insecure-http: for a lab only", file=sys.stderr)

    # Register (online): the agent token, 0600
    if config.mode == "online":
        assert request.token is not None
        try:
            _register(config, request.token, target)
        except LinkError as e:
            _error(
                f"registration failed: {e}: the agent is installed but not started; fix this "
                "and run edge-installer again (an enrolment token is used once: ask for a new one)",
                config,
            )
            return 1
        print(f"registered appliance {config.applianceId} with {config.apiUrl}")

    # Service: enabled and started where systemd runs, else the command that would
    if config.mode == "offline":
        # the unit follows a reconciler; an offline appliance applies each bundle it is given
        print(
            "offline mode: apply a bundle with: edgefleet-agent run --mode offline --bundle FILE"
        )
        return 0
    try:
        _service_step(target, dry_run=False)
    except ServiceFailed as e:
        _error(str(e), config)
        return 1
    return 0


def _register(config: AgentConfig, token: str, target: Path) -> None:
    settings = LinkSettings.from_config(config, ca_root=target, keys=False)
    with AgentLink(settings) as link:
        agent_token = link.register(token, hostname=os.uname().nodename)
    write_private(inside(target, config.tokenFile), agent_token.encode())


def _service_step(target: Path, *, dry_run: bool) -> None:
    if systemd_runs(target):
        if dry_run:
            print(f"would run: systemctl daemon-reload; {command(ENABLE)}")
            return
        enable()
        print(f"ran: {command(ENABLE)}")
        return
    where = "here" if target.resolve() == Path("/") else f"in {target}"
    print(f"systemd does not run {where}: start the agent there with: {command(ENABLE)}")


def _uninstall(removal: Removal) -> int:
    target = removal.target
    config: AgentConfig | None = None
    if inside(target, CONFIG).is_file():
        try:
            config = load_config(inside(target, CONFIG))
        except ConfigError:
            config = None  # removed all the same, with the default folders
    try:
        if inside(target, UNIT).is_file():
            if not systemd_runs(target):
                where = "here" if target.resolve() == Path("/") else f"in {target}"
                stop = command(DISABLE)
                print(f"systemd does not run {where}: stop the agent there with: {stop}")
            elif removal.dry_run:
                print(f"would run: {command(DISABLE)}")
            else:
                disable()
                print(f"ran: {command(DISABLE)}")
        remove(target, purge=removal.purge, dry_run=removal.dry_run, config=config, say=print)
        if systemd_runs(target) and not removal.dry_run:
            reload()
    except (ServiceFailed, OSError) as e:
        _error(f"uninstall: {e}", config)
        return 1
    return 0


def _error(message: str, config: AgentConfig | None) -> None:
    """One line on stderr, with any proxy password masked."""
    if config is not None:
        for url in (config.httpProxy, config.httpsProxy):
            if url and "@" in url:
                message = message.replace(url, redacted(url))
    print(f"edge-installer: {message}", file=sys.stderr)
