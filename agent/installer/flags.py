"""``edge-installer``'s command line: the seed's forms (flags before and after a bare ``--``),
each flag parsed for what it is (URLs with user info and IPv6 literals, CIDRs that must not
overlap), and the :class:`Request` they describe. Called by :func:`agent.installer.main`."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from agent.config import AgentConfig
from agent.errors import AgentError
from agent.link.client import AGENT_VERSION
from agent.secrets.errors import SecretError
from agent.secrets.keys import Identity, parse_identities
from agent.signatures import SignatureError, load_public_keys

SERVER_KEY = "/etc/edgefleet/server-key.pem"
CA_CERT = "/etc/edgefleet/ca.pem"
DEFAULT_DOCKER = "unix:///var/run/docker.sock"
MAX_FLAG_CHARS = 4096
# a host, a domain (.example.com), an address or a network, as NO_PROXY lists them
_NO_PROXY_ENTRY = re.compile(
    r"|\*|(\*\.|\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(:\d+)?|[0-9A-Fa-f:.]+(/\d+)?"
)
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9_][-A-Za-z0-9_]{0,62}(\.[A-Za-z0-9_][-A-Za-z0-9_]{0,62})*\.?"
)
_APPLIANCE_ID = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class FlagError(AgentError):
    """A flag that is missing or wrong: the installer prints it and exits 2."""


@dataclass(frozen=True)
class Request:
    """What the command line asks for: the agent's configuration and the files it names."""

    config: AgentConfig
    target: Path
    ca: Path | None  # the CA file to install (checked by the preflight)
    token: str | None  # the registration token (online mode)
    server_key: Path | None
    identities: list[Identity] | None  # --age-key, or None: the appliance's own
    docker_host: str  # the engine the agent drives (containerized)
    dry_run: bool = False


@dataclass(frozen=True)
class Removal:
    """``--uninstall`` (and ``--purge``): what to take away from ``target``."""

    target: Path
    purge: bool
    dry_run: bool


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-installer",
        description="Install the edgefleet agent on this appliance, register it and start it.",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=34),
    )
    add = parser.add_argument
    add("--version", action="version", version=f"edge-installer {AGENT_VERSION}")
    add("-i", "--ip", help="IP address of this appliance (required)")
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
    add("--http-proxy", help="HTTP proxy URL for the agent, e.g. http://user:pass@proxy:3128")
    add("--https-proxy", help="HTTPS proxy URL for the agent, e.g. http://[fd00::1]:3128")
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
    add(
        "--docker-host",
        metavar="URL",
        help="the Docker engine of containerized nodes (default: DOCKER_HOST, else "
        f"{DEFAULT_DOCKER})",
    )
    add("--dry-run", action="store_true", help="check, then print what would be written")
    add(
        "--uninstall",
        action="store_true",
        help="stop the agent and remove what the installer wrote (the data folder stays)",
    )
    add("--purge", action="store_true", help="with --uninstall: remove the data folder too")
    return parser


def seed_forms(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` without the bare ``--`` of the seed's command lines (``edge-installer -- -i
    ...``, ``edge-installer --target DIR -- -i ...``): a ``--`` where a flag is expected
    separates nothing here, the installer takes no positional arguments."""
    takes_value = {
        option
        for action in parser._actions
        if action.nargs is None and action.option_strings and action.const is None
        for option in action.option_strings
    }
    out: list[str] = []
    expects_value = False
    for arg in argv:
        if expects_value:
            out.append(arg)
            expects_value = False
        elif arg == "--":
            continue
        else:
            out.append(arg)
            expects_value = arg in takes_value
    return out


def parse(argv: Sequence[str], parser: argparse.ArgumentParser) -> Request | Removal:
    """The request the flags make; raises FlagError, one line, for the first wrong flag."""
    args = parser.parse_args(seed_forms(argv, parser))
    _plain_text(args, parser)
    target = Path(args.target).absolute()
    if args.purge and not args.uninstall:
        raise FlagError("--purge goes with --uninstall")
    if args.uninstall:
        return Removal(target, args.purge, args.dry_run)
    if args.ip is None:
        raise FlagError("the following arguments are required: -i/--ip")
    try:
        ip = ipaddress.IPv4Address(args.ip)
    except ValueError:
        raise FlagError(f"-i/--ip: '{args.ip}' is not an IPv4 address") from None
    virtual = args.isvirtual == "true"
    ssh_key = _file("-s/--sshkey", args.sshkey)
    if virtual and (ssh_key is None or not args.sshuser):
        raise FlagError("-s/--sshkey and -u/--sshuser are required with -v true")
    ca = _file("--custom-cacert", args.custom_cacert)
    token = args.registration_token or os.environ.get("EDGEFLEET_REGISTRATION_TOKEN")
    api = _url("-a/--apiurl", args.apiurl, user_info=False)
    if args.mode == "online":
        if api is None:
            raise FlagError("-a/--apiurl is required in online mode")
        if not token:
            raise FlagError(
                "--registration-token (or EDGEFLEET_REGISTRATION_TOKEN) is required in online mode"
            )
    server_key = _server_key(args.server_key)
    pod, service = _networks(args.pod_cidr, args.service_cidr, ip)
    docker_host = args.docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER
    _docker_url(docker_host)
    config = AgentConfig(
        applianceId=_device_id(args.deviceid, target),
        ip=str(ip),
        mode=args.mode,
        apiUrl=api,
        isVirtual=virtual,
        sshKey=str(ssh_key.absolute()) if ssh_key else None,
        sshUser=_ssh_user(args.sshuser),
        virtSock=args.virtsock,
        podCIDR=pod,
        serviceCIDR=service,
        httpProxy=_url("--http-proxy", args.http_proxy, user_info=True),
        httpsProxy=_url("--https-proxy", args.https_proxy, user_info=True),
        noProxy=_no_proxy(args.no_proxy),
        caCert=CA_CERT if ca is not None else None,
        serverKey=SERVER_KEY if server_key is not None else None,
        insecureHttp=args.insecure_http,
        dockerUrl=None if virtual or docker_host == DEFAULT_DOCKER else docker_host,
    )
    if args.mode == "online":
        if server_key is None:
            raise FlagError("--server-key is required in online mode: states are verified")
        if urlsplit(args.apiurl).scheme == "http" and not args.insecure_http:
            raise FlagError(
                f"-a/--apiurl: {args.apiurl} is http://: use https://, or --insecure-http "
                "for a lab only"
            )
    return Request(
        config=config,
        target=target,
        ca=ca,
        token=token,
        server_key=server_key,
        identities=_age_key(args.age_key),
        docker_host=docker_host,
        dry_run=args.dry_run,
    )


def redacted(url: str) -> str:
    """``url`` with the password of its user info masked, for messages and printed files."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def _url(flag: str, value: str | None, *, user_info: bool) -> str | None:
    """An http:// or https:// URL with a host (a name, an IPv4 address or a bracketed IPv6
    one) and an optional port; user info only where ``user_info`` (a proxy's login)."""
    if value is None:
        return None
    shown = redacted(value) if "@" in value else value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as e:
        raise FlagError(f"{flag}: '{shown}' is not a URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FlagError(f"{flag}: '{shown}' is not an http:// or https:// URL")
    if not _host_ok(parts):
        raise FlagError(f"{flag}: '{shown}' names no valid host")
    if port == 0:
        raise FlagError(f"{flag}: '{shown}': port 0 is not a port")
    if (parts.username is not None or parts.password is not None) and not user_info:
        raise FlagError(f"{flag}: '{shown}': no user info here (the tokens authenticate)")
    if parts.query or parts.fragment or any(c.isspace() for c in value):
        raise FlagError(f"{flag}: '{shown}' has a query, a fragment or spaces")
    if user_info and parts.path not in ("", "/"):
        raise FlagError(f"{flag}: '{shown}': a proxy URL has no path")
    return value


def _host_ok(parts: SplitResult) -> bool:
    host = parts.hostname or ""
    bracketed = "[" in parts.netloc.rsplit("@", 1)[-1]
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return bool(_HOST_NAME.fullmatch(host))


def _networks(
    pod_flag: str | None, service_flag: str | None, ip: ipaddress.IPv4Address
) -> tuple[str | None, str | None]:
    """The pod and service CIDRs: networks (no host bits), apart from each other and from
    this appliance's own address."""
    named: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for flag, value in (("--pod-cidr", pod_flag), ("--service-cidr", service_flag)):
        if value is None:
            continue
        try:
            network = ipaddress.ip_network(value)
        except ValueError as e:
            why = "has host bits set" if "host bits" in str(e) else "is not a CIDR"
            raise FlagError(f"{flag}: '{value}' {why} like 10.42.0.0/16") from None
        if network.version == ip.version and ip in network:
            raise FlagError(f"{flag}: {network} holds this appliance's address {ip} (-i/--ip)")
        named.append((flag, network))
    if len(named) == 2 and named[0][1].overlaps(named[1][1]):
        raise FlagError(
            f"--service-cidr: {named[1][1]} overlaps --pod-cidr {named[0][1]}: the pod and "
            "service networks must be apart"
        )
    return pod_flag, service_flag


def _docker_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("unix", "tcp", "http", "https", "ssh") or not (
        parts.path if parts.scheme == "unix" else parts.netloc
    ):
        raise FlagError(
            f"--docker-host: '{value}' is not a Docker engine address like {DEFAULT_DOCKER}"
        )


def _file(flag: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        raise FlagError(f"{flag}: {value}: no such file")
    return path


def _device_id(value: str | None, target: Path) -> str:
    """The appliance ID: ``-d``, else the machine ID of the root being installed (never the
    running machine's when that is another root)."""
    if value is not None:  # given, even empty: never silently the machine ID instead
        device = value
    else:
        machine_id = target / "etc" / "machine-id"
        try:
            device = machine_id.read_text().strip()
        except (OSError, UnicodeDecodeError):
            device = ""
        if not device:
            raise FlagError(f"-d/--deviceid: not given, and {machine_id} is missing or empty")
    if not _APPLIANCE_ID.fullmatch(device) or len(device) > 63:
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


def _age_key(flag: str | None) -> list[Identity] | None:
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


def _plain_text(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """No flag may carry a control character (a newline in --no-proxy would add a line of
    the caller's choosing to a file) or be longer than any real value is."""
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
