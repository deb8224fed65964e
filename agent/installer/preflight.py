"""The installer's checks before it writes anything: the CA file parses, the agent program is
installed, the Docker engine (containerized) or libvirt (virtualized) answers, and in online
mode the reconciler answers through the configured proxy and CA. Each failure is one line;
called by :func:`agent.installer.main`.

    AgentError
    └── PreflightFailed     a check failed: the installer exits 1 with nothing written
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import docker
import httpx
from cryptography import x509
from docker.errors import DockerException

from agent.apply.inventory import JOIN_SECRET_NAME, InventoryUnreadable, join_secret
from agent.config import AgentConfig
from agent.errors import AgentError
from agent.installer.flags import Request, redacted
from agent.link.client import AgentLink, LinkSettings

TIMEOUT = 10.0
LIBVIRT_TIMEOUT = 30.0


class PreflightFailed(AgentError):
    pass


def preflight(request: Request, *, say: Callable[[str], None]) -> str:
    """Run every check, telling ``say`` what passed; returns the agent program's path."""
    config = request.config
    if request.ca is not None:
        check_ca(request.ca)
        say(f"ok: --custom-cacert {request.ca} is a PEM certificate")
    executable = agent_executable()
    say(f"ok: the agent is {executable}")
    _join_secret(request.target / config.dataDir.lstrip("/"))
    if config.isVirtual:
        say(f"ok: libvirt answers at {check_libvirt(config)}")
    else:
        check_engine(request.docker_host)
        say(f"ok: the Docker engine answers at {request.docker_host}")
    if config.mode == "online":
        say(f"ok: {check_server(config, request.ca)}")
    return executable


def check_ca(path: Path) -> None:
    try:
        x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        raise PreflightFailed(f"--custom-cacert: {path}: not a PEM certificate") from None


def agent_executable() -> str:
    """The ``edgefleet-agent`` installed beside this installer (a virtual environment's bin/
    need not be on PATH), else the one on PATH: the path the unit runs."""
    beside = Path(sys.executable).absolute().with_name("edgefleet-agent")
    for found in (str(beside), shutil.which("edgefleet-agent")):
        if found and os.path.isfile(found) and os.access(found, os.X_OK):
            return os.path.abspath(found)
    raise PreflightFailed(
        f"edgefleet-agent is installed neither beside edge-installer ({beside.parent}) nor on "
        "PATH: install the edgefleet package first"
    )


def _join_secret(data: Path) -> None:
    """An existing join secret of the wrong length is refused before anything changes."""
    if (data / JOIN_SECRET_NAME).exists():
        try:
            join_secret(data)
        except InventoryUnreadable as e:
            raise PreflightFailed(str(e)) from None


def check_engine(url: str) -> None:
    where = f"the Docker engine at {url}"
    parts = urlsplit(url)
    if parts.scheme == "unix" and not Path(parts.path).exists():
        raise PreflightFailed(f"{where} does not answer: no socket {parts.path}")
    try:
        client = docker.DockerClient(base_url=url, timeout=int(TIMEOUT))
    except DockerException as e:
        raise PreflightFailed(f"{where} does not answer: {_first_line(e)}") from None
    try:
        client.ping()
    except (DockerException, OSError) as e:
        raise PreflightFailed(f"{where} does not answer: {_first_line(e)}") from None
    finally:
        client.close()


def check_libvirt(config: AgentConfig) -> str:
    """libvirt answers where the agent will reach it (the socket, or qemu+ssh to this
    appliance's address); returns the URI."""
    local = Path(config.virtSock).exists()
    if not local and not config.sshUser:
        raise PreflightFailed(f"libvirt does not answer: no socket {config.virtSock} (-x)")
    if not local:
        _port_answers(f"libvirt over ssh (-x {config.virtSock} is not here)", config.ip, 22)
    try:
        from agent.drivers.libvirt import connect, connection_uri
    except ImportError:  # libvirt-python is an optional extra
        return _socket_answers(config.virtSock) if local else f"ssh://{config.ip}"
    uri = connection_uri(
        uri=config.libvirtUri,
        socket=config.virtSock,
        ssh_host=None if local else config.ip,
        ssh_user=config.sshUser,
        ssh_key=config.sshKey,
    )
    # an ssh transport may wait on a host that never answers: the check gives up, the
    # connection attempt is left to end with the installer
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            connect(uri).close()
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            outcome.append(e)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(LIBVIRT_TIMEOUT)
    if not outcome:
        raise PreflightFailed(f"libvirt at {uri} does not answer within {LIBVIRT_TIMEOUT:.0f} s")
    if outcome[0] is not None:
        raise PreflightFailed(f"libvirt at {uri} does not answer: {_first_line(outcome[0])}")
    return uri


def _port_answers(what: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT):
            return
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        why = f"{what}: {host}:{port} does not take connections: {reason}"
        raise PreflightFailed(why) from None


def _socket_answers(path: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        try:
            sock.connect(path)
        except OSError as e:
            raise PreflightFailed(
                f"libvirt does not answer at {path} (-x): {e.strerror or e}"
            ) from None
    return f"unix:{path}"


def check_server(config: AgentConfig, ca: Path | None) -> str:
    """The reconciler's /healthz answers through the proxy the agent will use, trusting the
    CA it will trust; a failure names the host that failed (the proxy or the server)."""
    assert config.apiUrl is not None
    local = config.model_copy(update={"caCert": str(ca.absolute()) if ca else None})
    settings = LinkSettings.from_config(local, keys=False)
    api = config.apiUrl
    via = ""
    if settings.proxy:
        flag = "--https-proxy" if urlsplit(api).scheme == "https" else "--http-proxy"
        _proxy_answers(flag, settings.proxy)
        via = f" through the proxy {redacted(settings.proxy)}"
    try:
        with AgentLink(settings) as link:
            response = link.client.get("/healthz", timeout=TIMEOUT)
    except httpx.ProxyError as e:
        raise PreflightFailed(
            f"-a/--apiurl: the proxy {redacted(settings.proxy or '')} could not reach {api}: "
            f"{_first_line(e)}"
        ) from None
    except httpx.ConnectError as e:
        if "CERTIFICATE_VERIFY_FAILED" in str(e) or "certificate verify failed" in str(e):
            trusted = f"the CA of --custom-cacert {ca}" if ca else "the system's CAs"
            raise PreflightFailed(
                f"-a/--apiurl: {api}: its TLS certificate is not signed by {trusted}{via}"
            ) from None
        raise PreflightFailed(_silent(api, via, e)) from None
    except httpx.HTTPError as e:
        raise PreflightFailed(_silent(api, via, e)) from None
    if response.status_code != 200:
        raise PreflightFailed(
            f"-a/--apiurl: {api}/healthz answers {response.status_code}{via}: is it an edgefleet "
            "reconciler?"
        )
    return f"the reconciler answers at {api}{via}"


def _silent(api: str, via: str, error: BaseException) -> str:
    return f"-a/--apiurl: {api} does not answer{via}: {_first_line(error)}"


def _proxy_answers(flag: str, url: str) -> None:
    """The proxy's name resolves and it takes connections: otherwise the error names it,
    not the server behind it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    shown = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise PreflightFailed(f"{flag}: the proxy {shown} does not resolve: {e.strerror}") from None
    last: OSError | None = None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(TIMEOUT)
            try:
                sock.connect(address)
                return
            except OSError as e:
                last = e
    reason = last.strerror if last is not None and last.strerror else str(last)
    raise PreflightFailed(f"{flag}: the proxy {shown} does not take connections: {reason}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]
