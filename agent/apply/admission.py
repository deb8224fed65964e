"""The door: a DesiredState is parsed and checked here before anything is applied; a refused
state changes nothing on the appliance. Errors are one line, naming the field::

    StateRefused (AgentError)    the state is not applied; report it upstream
    ├── UntrustedState           unsigned, or not signed by the reconciler's key (the link)
    ├── MalformedState           not JSON, an unknown field, a wrong type
    ├── DigestMismatch           the digest does not match the content
    ├── UnsafeName               a name that would escape its folder or break a container name
    ├── InconsistentState        duplicate names, a node in an unknown pool, another appliance
    ├── NetworkMismatch          a cluster network other than the one the appliance was
    │                            installed for (edge-installer --pod-cidr, --service-cidr)
    └── SecretRefused            a sealed manifest that does not open here (agent.apply.opening)
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import ValidationError

from agent.contract import ClusterState, DesiredState, Node
from agent.errors import AgentError
from agent.naming import MAX_NODE_NAME, is_label, is_plain_file_name


class StateRefused(AgentError):
    """The desired state is refused; nothing was applied. ``digest`` is the digest the
    document claimed (its ETag), when known, so the refusal can be reported upstream."""

    digest: str | None = None


class UntrustedState(StateRefused):
    pass


class MalformedState(StateRefused):
    pass


class DigestMismatch(StateRefused):
    pass


class UnsafeName(StateRefused):
    pass


class InconsistentState(StateRefused):
    pass


class NetworkMismatch(StateRefused):
    pass


@dataclass(frozen=True)
class InstalledNetwork:
    """The pod and service CIDRs the appliance was installed for (``edge-installer
    --pod-cidr``, ``--service-cidr``; None: not given). A cluster on another network is
    refused: the site's network was planned around these."""

    podCIDR: str | None = None
    serviceCIDR: str | None = None


# environment variables the agent sets itself, which a state's node setup may not
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_AGENT_ENV = ("EDGEFLEET_", "K3S_")


def parse_state(raw: str | bytes) -> DesiredState:
    try:
        return DesiredState.model_validate_json(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise MalformedState(f"desired state: {where}: {first['msg']}{more}") from e


def admit(
    state: DesiredState,
    *,
    appliance: str | None = None,
    network: InstalledNetwork | None = None,
) -> DesiredState:
    """Return ``state`` if it may be applied on ``appliance`` (None: not yet known), whose
    clusters run on the ``network`` the appliance was installed for (None: any)."""
    computed = state.computed_digest()
    if state.digest != computed:
        raise DigestMismatch(
            f"desired state: digest {state.digest!r} does not match its content ({computed})"
        )
    if appliance is not None and state.appliance != appliance:
        raise InconsistentState(
            f"desired state is for appliance {state.appliance!r}, this agent is {appliance!r}"
        )
    _refuse_duplicates("cluster", (c.name for c in state.clusters))
    _check_joins(state)
    for cluster in state.clusters:
        where = f"cluster {cluster.name!r}"
        _require_label(cluster.name, "cluster name", "desired state")
        _refuse_duplicates(f"{where}: pool", (p.name for p in cluster.pools))
        _refuse_duplicates(f"{where}: node", (n.name for n in cluster.nodes))
        pools = {pool.name for pool in cluster.pools}
        for pool in cluster.pools:
            _require_label(pool.name, "pool name", where)
        for node in cluster.nodes:
            _require_label(node.name, "node name", where, longest=MAX_NODE_NAME)
            if node.pool not in pools:
                raise InconsistentState(f"{where}: node {node.name!r}: unknown pool {node.pool!r}")
            _check_setup(node, where)
        if network is not None and cluster.phase == "present":
            _check_network(cluster, network)
        for manifest in cluster.manifests:
            for value, what in ((manifest.name, "manifest name"), (manifest.pack, "pack name")):
                if not is_plain_file_name(value):
                    raise UnsafeName(
                        f"{where}: {what} {value!r} is not a plain file name "
                        "(no path separators, no leading dot)"
                    )
    return state


def _check_setup(node: Node, where: str) -> None:
    """What a node reads lands where it says and sets only what is the node's to set."""
    at = f"{where}: node {node.name!r}"
    for node_file in node.setup.files:
        path = node_file.path
        if (
            not path.startswith("/")
            or path == "/"
            or posixpath.normpath(path) != path
            or "\x00" in path
            or len(path) > 1024
        ):
            raise UnsafeName(f"{at}: file path {path!r} is not a plain absolute path")
    for name, value in node.setup.environment.items():
        if not _ENV_NAME.fullmatch(name) or name.startswith(_AGENT_ENV):
            raise UnsafeName(f"{at}: environment variable {name!r} is not the node setup's to set")
        if "\x00" in value:
            raise UnsafeName(f"{at}: environment variable {name!r} holds a NUL character")
    for key in node.setup.labels:
        # the agent's own labels are edgefleet.<word>; the node's are edgefleet.dev/<tag>
        if not key or "\x00" in key or (key.startswith("edgefleet.") and "/" not in key):
            raise UnsafeName(f"{at}: label {key!r} is not the node setup's to set")


def _check_network(cluster: ClusterState, installed: InstalledNetwork) -> None:
    for what, flag, have, want in (
        ("pod CIDR", "--pod-cidr", cluster.network.podCIDR, installed.podCIDR),
        ("service CIDR", "--service-cidr", cluster.network.serviceCIDR, installed.serviceCIDR),
    ):
        if want is None:
            continue
        try:
            same = ipaddress.ip_network(have) == ipaddress.ip_network(want)
        except ValueError:
            where = f"cluster {cluster.name!r}"
            raise MalformedState(f"{where}: {what} {have!r} is not a CIDR") from None
        if not same:
            raise NetworkMismatch(
                f"cluster {cluster.name!r}: {what} {have} is not this appliance's {want} "
                f"(edge-installer {flag}): change the cluster's spec.config, or install the "
                f"appliance again with {flag} {have}"
            )


def _check_joins(state: DesiredState) -> None:
    """A join is for a cluster of the state, once, and names an https:// server."""
    _refuse_duplicates("join of cluster", (j.cluster for j in state.join))
    names = {c.name for c in state.clusters}
    for join in state.join:
        if join.cluster not in names:
            raise InconsistentState(f"join of cluster {join.cluster!r}: no such cluster")
        server = join.server
        if server is not None:
            parts = urlsplit(server)
            if parts.scheme != "https" or not parts.hostname or parts.path or "\n" in server:
                raise InconsistentState(
                    f"join of cluster {join.cluster!r}: server {server!r} is not https://HOST:PORT"
                )
        if not join.token or any(ch.isspace() for ch in join.token):
            raise InconsistentState(f"join of cluster {join.cluster!r}: no usable token")


def _require_label(name: str, what: str, where: str, *, longest: int = 63) -> None:
    if not is_label(name) or len(name) > longest:
        raise UnsafeName(
            f"{where}: {what} {name!r} must be lower-case letters, digits and '-' "
            f"(at most {longest})"
        )


def _refuse_duplicates(what: str, names: Iterable[str]) -> None:
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise InconsistentState(f"{what} {repeated[0]!r} appears more than once")
