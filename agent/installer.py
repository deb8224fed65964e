"""``edge-installer``: checks its flags, writes the agent's configuration and systemd unit and the
appliance's age identity (printing its recipient), and registers the appliance in online mode.
Exit codes: 0 done, 1 registration failed, 2 a flag is wrong."""

from __future__ import annotations

import argparse
import importlib.resources
import ipaddress
import os
import re
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from agent.apply.inventory import join_secret, private_folder
from agent.config import AGE_KEY_NAME, AgentConfig, write_private
from agent.errors import AgentError
from agent.link.client import AGENT_VERSION, AgentLink, LinkError, LinkSettings
from agent.secrets.errors import SecretError
from agent.secrets.keys import (
    Identity,
    generate,
    identity_file,
    parse_identities,
    read_identities,
)
from agent.signatures import SignatureError, key_id, load_public_keys

SERVER_KEY = "/etc/edgefleet/server-key.pem"

UNIT = "edgefleet-agent.service"  # deploy/ of the project, the data package edgefleet_deploy
DEFAULT_EXECUTABLE = "/usr/local/bin/edgefleet-agent"


MAX_FLAG_CHARS = 4096
# a host, a domain (.example.com), an address or a network, as NO_PROXY lists them
_NO_PROXY_ENTRY = re.compile(
    r"|\*|(\*\.|\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(:\d+)?|[0-9A-Fa-f:.]+(/\d+)?"
)


class FlagError(AgentError):
    """A flag that is missing or wrong: the installer prints it and exits 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-installer",
        description="Install the edgefleet agent on this appliance and register it.",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=34),
    )
    add = parser.add_argument
    add("--version", action="version", version=f"edge-installer {AGENT_VERSION}")
    add("-i", "--ip", required=True, help="IP address of this appliance (required)")
    add("-a", "--apiurl", help="reconciler URL, e.g. https://fleet.example.com (online mode)")
    add("-d", "--deviceid", help="appliance ID (default: the machine ID, /etc/machine-id)")
    add(
        "-v",
        "--isvirtual",
        default="false",
        choices=("true", "false"),
        help="true: this appliance hosts virtualized clusters (libvirt)",
    )
    add("-s", "--sshkey", help="SSH private key for qemu+ssh to libvirt (required with -v true)")
    add("-u", "--sshuser", help="SSH user for qemu+ssh to libvirt (required with -v true)")
    add(
        "-x",
        "--virtsock",
        default="/var/run/libvirt/libvirt-sock",
        help="libvirt socket (default: /var/run/libvirt/libvirt-sock)",
    )
    add(
        "-m",
        "--mode",
        default="online",
        choices=("online", "offline"),
        help="online: pull from the reconciler; offline: apply bundles (default: online)",
    )
    add("--pod-cidr", help="pod network of this appliance's clusters, e.g. 10.42.0.0/16")
    add("--service-cidr", help="service network, e.g. 10.43.0.0/16")
    add("--http-proxy", help="HTTP proxy URL for the agent and the nodes")
    add("--https-proxy", help="HTTPS proxy URL for the agent and the nodes")
    add("--no-proxy", help="comma-separated hosts and networks that bypass the proxy")
    add("--custom-cacert", help="PEM CA certificate to trust (the reconciler's or a proxy's)")
    add("--target", default="/", help="root folder to install into (default: /)")
    add(
        "--registration-token",
        help="one-time enrolment token (edgefleet appliance enroll) or the fleet's bootstrap "
        "token (or EDGEFLEET_REGISTRATION_TOKEN)",
    )
    add(
        "--server-key",
        help="the reconciler's Ed25519 public key (PEM, from edgefleet keygen): states and "
        "bundles it did not sign are refused (required in online mode)",
    )
    add(
        "--insecure-http",
        action="store_true",
        help="allow an http:// apiurl: for a lab only, anyone on the way reads the tokens",
    )
    add(
        "--age-key",
        metavar="FILE",
        help="age identity file for a site- or fleet-wide key (default: a new one for this "
        "appliance, or the one it has)",
    )
    return parser


def _url(flag: str, value: str | None) -> str | None:
    if value is not None and not re.match(r"^https?://[^\s/:]+(:\d+)?(/\S*)?$", value):
        raise FlagError(f"{flag}: '{value}' is not an http:// or https:// URL")
    return value


def _cidr(flag: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ipaddress.ip_network(value)
    except ValueError:
        raise FlagError(f"{flag}: '{value}' is not a CIDR like 10.42.0.0/16") from None
    return value


def _file(flag: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        raise FlagError(f"{flag}: {value}: no such file")
    return path


def _device_id(value: str | None, target: Path) -> str:
    if value is not None:  # given, even empty: never silently the machine ID instead
        device = value
    else:
        machine_id = target / "etc" / "machine-id"
        for candidate in (machine_id, Path("/etc/machine-id")):
            if candidate.is_file() and candidate.read_text().strip():
                device = candidate.read_text().strip()
                break
        else:
            raise FlagError("-d/--deviceid: not given and /etc/machine-id is missing")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", device) or len(device) > 63:
        raise FlagError(f"-d/--deviceid: '{device}' is not a valid appliance ID")
    return device


def _server_key(value: str | None) -> Path | None:
    path = _file("--server-key", value)
    if path is not None:
        try:
            load_public_keys(path)
        except SignatureError as e:
            raise FlagError(f"--server-key: {e}") from None
    return path


def _plain_text(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """No flag may carry a control character (a newline in --no-proxy would add a line of
    the caller's choosing to the systemd unit) or be longer than any real value is."""
    flags = {a.dest: "/".join(a.option_strings) for a in parser._actions if a.option_strings}
    for dest, value in vars(args).items():
        if not isinstance(value, str):
            continue
        flag = flags.get(dest, dest)
        if not value.isprintable():
            raise FlagError(f"{flag}: control characters are not allowed")
        if len(value) > MAX_FLAG_CHARS:
            raise FlagError(f"{flag}: longer than {MAX_FLAG_CHARS} characters")


def _no_proxy(value: str | None) -> str | None:
    if value is not None and not all(_NO_PROXY_ENTRY.fullmatch(e) for e in value.split(",")):
        raise FlagError(
            f"--no-proxy: '{value}' is not a comma-separated list of hosts, domains and networks"
        )
    return value


def _ssh_user(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", value):
        raise FlagError(f"-u/--sshuser: '{value}' is not a user name")
    return value


def check(
    args: argparse.Namespace, parser: argparse.ArgumentParser | None = None
) -> tuple[AgentConfig, Path | None, str | None]:
    """The configuration the flags describe, the CA file, and the registration token."""
    _plain_text(args, parser or build_parser())
    try:
        ipaddress.IPv4Address(args.ip)
    except ValueError:
        raise FlagError(f"-i/--ip: '{args.ip}' is not an IPv4 address") from None
    virtual = args.isvirtual == "true"
    ssh_key = _file("-s/--sshkey", args.sshkey)
    if virtual and (ssh_key is None or not args.sshuser):
        raise FlagError("-s/--sshkey and -u/--sshuser are required with -v true")
    ca = _file("--custom-cacert", args.custom_cacert)
    if ca is not None:
        try:
            x509.load_pem_x509_certificate(ca.read_bytes())
        except ValueError:
            raise FlagError(f"--custom-cacert: {ca}: not a PEM certificate") from None
    token = args.registration_token or os.environ.get("EDGEFLEET_REGISTRATION_TOKEN")
    if args.mode == "online":
        if not args.apiurl:
            raise FlagError("-a/--apiurl is required in online mode")
        if not token:
            raise FlagError(
                "--registration-token (or EDGEFLEET_REGISTRATION_TOKEN) is required in online mode"
            )
    server_key = _server_key(args.server_key)
    target = Path(args.target)
    config = AgentConfig(
        applianceId=_device_id(args.deviceid, target),
        ip=args.ip,
        mode=args.mode,
        apiUrl=_url("-a/--apiurl", args.apiurl),
        isVirtual=virtual,
        sshKey=str(ssh_key) if ssh_key else None,
        sshUser=_ssh_user(args.sshuser),
        virtSock=args.virtsock,
        podCIDR=_cidr("--pod-cidr", args.pod_cidr),
        serviceCIDR=_cidr("--service-cidr", args.service_cidr),
        httpProxy=_url("--http-proxy", args.http_proxy),
        httpsProxy=_url("--https-proxy", args.https_proxy),
        noProxy=_no_proxy(args.no_proxy),
        caCert="/etc/edgefleet/ca.pem" if ca is not None else None,
        serverKey=SERVER_KEY if server_key is not None else None,
        insecureHttp=args.insecure_http,
    )
    if args.mode == "online":
        if server_key is None:
            raise FlagError("--server-key is required in online mode: states are verified")
        if urlsplit(args.apiurl).scheme == "http" and not args.insecure_http:
            raise FlagError(
                f"-a/--apiurl: {args.apiurl} is http://: use https://, or --insecure-http "
                "for a lab only"
            )
    return config, ca, token


def _inside(target: Path, path: str) -> Path:
    return target / path.lstrip("/")


def install(config: AgentConfig, ca: Path | None, target: Path) -> Path:
    """Write the configuration (0600, in a 0700 folder), the CA, the systemd unit, the data
    folder (0700) and the join secret; returns the config file."""
    config_path = _inside(target, "/etc/edgefleet/agent.yaml")
    private_folder(config_path.parent)
    config.save(config_path)
    if ca is not None and config.caCert:
        ca_path = _inside(target, config.caCert)
        ca_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ca, ca_path)
    unit = _inside(target, "/etc/systemd/system/edgefleet-agent.service")
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(agent_unit(config, _agent_executable()))
    data = _inside(target, config.dataDir)
    private_folder(data)
    join_secret(data)
    return config_path


def _agent_executable() -> str:
    """The edgefleet-agent installed beside this installer (a virtual environment's bin/
    need not be on PATH), else the one on PATH."""
    beside = Path(sys.executable).with_name("edgefleet-agent")
    if beside.is_file():
        return str(beside)
    return shutil.which("edgefleet-agent") or DEFAULT_EXECUTABLE


def agent_unit(config: AgentConfig, executable: str) -> str:
    """The shipped unit with this agent's executable and proxy variables."""
    text = importlib.resources.files("edgefleet_deploy").joinpath(UNIT).read_text()
    environment = "".join(
        f"Environment={name}={value}\n"
        for name, value in (
            ("HTTP_PROXY", config.httpProxy),
            ("HTTPS_PROXY", config.httpsProxy),
            ("NO_PROXY", config.noProxy),
        )
        if value
    )
    text = text.replace(f"ExecStart={DEFAULT_EXECUTABLE} ", f"ExecStart={executable} ", 1)
    return text.replace("[Service]\n", f"[Service]\n{environment}", 1)


def age_key(flag: str | None) -> list[Identity] | None:
    """The identities ``--age-key`` names, checked before anything is written."""
    path = _file("--age-key", flag)
    if path is None:
        return None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        raise FlagError(f"--age-key: {path}: cannot be read as text") from None
    try:
        return parse_identities(text, source=str(path))
    except SecretError as e:
        raise FlagError(f"--age-key: {e}") from None


def install_identity(config: AgentConfig, given: list[Identity] | None, target: Path) -> Identity:
    """The appliance's age identity in its data folder (0600): the given one, the one it has
    (a reinstall keeps it, or the secrets sealed for it no longer open), or a new one."""
    path = _inside(target, config.dataDir) / AGE_KEY_NAME
    if given is None and path.is_file():
        return read_identities(path)[0]
    identities = given or [generate()]
    created = datetime.now(UTC)
    write_private(path, "".join(identity_file(i, created=created) for i in identities).encode())
    return identities[0]


def install_server_key(config: AgentConfig, key: str, target: Path) -> str:
    """Copy the reconciler's public key where the configuration names it; returns its id."""
    assert config.serverKey is not None
    path = _inside(target, config.serverKey)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(key, path)
    return ", ".join(key_id(k) for k in load_public_keys(path))


def register(config: AgentConfig, token: str, target: Path) -> None:
    """Register with the reconciler and keep the per-agent token (mode 0600)."""
    settings = LinkSettings.from_config(config, ca_root=target, keys=False)
    with AgentLink(settings) as link:
        agent_token = link.register(token, hostname=os.uname().nodename)
    token_path = _inside(target, config.tokenFile)
    private_folder(token_path.parent)
    write_private(token_path, agent_token.encode())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config, ca, token = check(args, parser)
        given = age_key(args.age_key)
    except FlagError as e:
        print(f"edge-installer: {e}", file=sys.stderr)
        return 2
    target = Path(args.target)
    try:
        path = install(config, ca, target)
    except AgentError as e:  # a join secret that is there but wrong
        print(f"edge-installer: {e}", file=sys.stderr)
        return 1
    print(f"wrote {path} and the edgefleet-agent systemd unit")
    identity = install_identity(config, given, target)
    print(
        f"age recipient of {config.applianceId}: {identity.recipient}\n"
        "  (its spec.ageRecipient in the fleet repository: secrets sealed for it open here)"
    )
    if args.server_key:
        trusted = install_server_key(config, args.server_key, target)
        print(f"states and bundles are trusted when signed by {trusted}")
    if config.insecureHttp:
        print("edge-installer: --insecure-http: for a lab only", file=sys.stderr)
    if config.mode == "online":
        assert token is not None
        try:
            register(config, token, target)
        except LinkError as e:
            print(f"edge-installer: registration failed: {e}", file=sys.stderr)
            return 1
        print(f"registered appliance {config.applianceId} with {config.apiUrl}")
    return 0
