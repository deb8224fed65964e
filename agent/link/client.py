"""The HTTP client of the reconciler's agent API (register, long-poll the desired state,
report status), through the configured proxy and CA. Every state is verified against the
reconciler's public key(s) before it is parsed; plain ``http://`` is refused unless the
agent was installed for a lab (``--insecure-http``)::

    LinkError (agent.errors.AgentError)
    ├── Unreachable   (network, timeouts, 5xx: temporary, retry with backoff)
    ├── Rejected      (401/403/409/4xx: the token or the request is wrong; retrying will not help)
    └── InsecureLink  (an http:// reconciler, not allowed by the configuration)
"""

from __future__ import annotations

import ipaddress
import platform
import ssl
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.apply.admission import StateRefused, UntrustedState, parse_state
from agent.config import AgentConfig
from agent.contract import DesiredState, etag_digest
from agent.errors import AgentError
from agent.signatures import HEADER, SignatureError, load_public_keys, verify


def _installed_version() -> str:
    try:
        return metadata.version("edgefleet")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


AGENT_VERSION = _installed_version()


class LinkError(AgentError):
    """The reconciler could not be asked; the message is one line."""


class Unreachable(LinkError):
    """Temporary: the reconciler or the network is down."""


class Rejected(LinkError):
    """Permanent for this request: wrong token, unknown appliance, refused body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class InsecureLink(LinkError):
    """Permanent: the configuration names an http:// reconciler without allowing it."""


@dataclass(frozen=True)
class LinkSettings:
    api_url: str
    appliance_id: str
    ip: str
    proxy: str | None = None
    ca_file: Path | None = None
    timeout: float = 10.0
    server_keys: tuple[Ed25519PublicKey, ...] = ()  # none: every state is refused
    insecure_http: bool = False  # labs only

    @classmethod
    def from_config(
        cls, config: AgentConfig, *, ca_root: Path = Path("/"), keys: bool = True
    ) -> LinkSettings:
        """The link the configuration describes; ``keys=False`` leaves out the server's
        keys (registering needs none). Raises SignatureError for an unreadable key file."""
        assert config.apiUrl is not None
        scheme = urlsplit(config.apiUrl).scheme
        proxy = config.httpsProxy if scheme == "https" else config.httpProxy
        if proxy and _bypasses(config.apiUrl, config.noProxy):
            proxy = None
        ca = ca_root / config.caCert.lstrip("/") if config.caCert else None
        server_keys = (
            load_public_keys(ca_root / config.serverKey.lstrip("/"))
            if keys and config.serverKey
            else ()
        )
        return cls(
            config.apiUrl,
            config.applianceId,
            config.ip,
            proxy=proxy,
            ca_file=ca,
            server_keys=server_keys,
            insecure_http=config.insecureHttp,
        )


def _bypasses(url: str, no_proxy: str | None) -> bool:
    """Whether ``url``'s host is in a NO_PROXY list (names, .suffixes, IPs and CIDRs)."""
    host = urlsplit(url).hostname or ""
    for raw in (no_proxy or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        if entry == "*" or host == entry or (entry.startswith(".") and host.endswith(entry)):
            return True
        if host.endswith("." + entry):
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


class AgentLink:
    """One HTTP connection pool to the reconciler."""

    def __init__(self, settings: LinkSettings, *, transport: httpx.BaseTransport | None = None):
        if urlsplit(settings.api_url).scheme != "https" and not settings.insecure_http:
            raise InsecureLink(
                f"{settings.api_url}: refusing a reconciler that is not https:// (tokens and "
                "states would cross the network readable); install with --insecure-http "
                "for a lab only"
            )
        self.settings = settings
        verify: ssl.SSLContext | bool = True
        if settings.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(settings.ca_file))
        self.client = httpx.Client(
            base_url=settings.api_url,
            proxy=settings.proxy,
            verify=verify,
            timeout=settings.timeout,
            trust_env=False,  # proxies come from the agent's configuration only
            transport=transport,
        )

    def __enter__(self) -> AgentLink:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def _send(
        self, method: str, path: str, *, allow: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TimeoutException as e:
            raise Unreachable(f"{self.settings.api_url}: timed out") from e
        except httpx.TransportError as e:
            raise Unreachable(f"{self.settings.api_url}: {type(e).__name__}: {e}") from e
        if response.status_code >= 500:
            raise Unreachable(f"{path}: the reconciler answered {response.status_code}")
        if response.status_code >= 400 and response.status_code not in allow:
            raise Rejected(response.status_code, f"{path}: {_detail(response)}")
        return response

    def register(self, credential: str, *, hostname: str) -> str:
        """Register this appliance; returns its agent token. ``credential`` is the fleet's
        bootstrap token or a one-time enrolment token (the first registration), or the
        agent's current token (a rotation)."""
        response = self._send(
            "POST",
            "/v1/register",
            headers={"Authorization": f"Bearer {credential}"},
            json={
                "applianceId": self.settings.appliance_id,
                "hostname": hostname,
                "ip": self.settings.ip,
                "arch": _arch(),
                "agentVersion": AGENT_VERSION,
            },
        )
        token = response.json().get("token")
        if not isinstance(token, str) or not token:
            raise Rejected(response.status_code, "/v1/register: answer has no token")
        return token

    def desired(self, token: str, *, etag: str | None, wait: float = 0) -> DesiredState | None:
        """The desired state, or None when it still has digest ``etag`` (or there is none
        for this appliance yet). Long-polls up to ``wait`` seconds. Raises StateRefused
        for a document that is unsigned, not signed by the reconciler's key, or not a
        well-formed DesiredState."""
        headers = {"Authorization": f"Bearer {token}"}
        if etag:
            headers["If-None-Match"] = f'"{etag}"'
        params = {"wait": str(int(wait))} if wait else {}
        response = self._send(
            "GET",
            "/v1/desired",
            headers=headers,
            params=params,
            timeout=self.settings.timeout + wait,
            allow=(404,),  # not declared, or nothing released for it yet: nothing to do
        )
        if response.status_code in (204, 304, 404):
            return None
        try:
            try:
                verify(response.content, response.headers.get(HEADER), self.settings.server_keys)
            except SignatureError as e:
                raise UntrustedState(f"desired state: {e}") from e
            return parse_state(response.content)
        except StateRefused as e:
            e.digest = etag_digest(response.headers.get("etag", "").strip('"')) or None
            raise

    def report(self, token: str, status: dict[str, Any]) -> None:
        self._send("POST", "/v1/status", headers={"Authorization": f"Bearer {token}"}, json=status)

    def lease(self, token: str, cluster: str, *, seconds: float) -> dict[str, Any]:
        """Ask for the cluster's reboot lease: ``{"granted", "holder", "expiresAt"}``."""
        response = self._send(
            "POST",
            "/v1/leases",
            headers={"Authorization": f"Bearer {token}"},
            json={"cluster": cluster, "purpose": "patch", "seconds": seconds},
        )
        try:
            found: dict[str, Any] = response.json()
        except ValueError as e:
            raise Unreachable(f"/v1/leases: the answer is not JSON ({e})") from None
        return found

    def release_lease(self, token: str, cluster: str) -> None:
        self._send("DELETE", f"/v1/leases/{cluster}", headers={"Authorization": f"Bearer {token}"})


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return f"{response.status_code} {detail or response.reason_phrase}"[:200]


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
