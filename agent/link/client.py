"""The HTTP client of the reconciler's agent API (register, long-poll the desired state,
report status), through the configured proxy and CA::

    LinkError (agent.errors.AgentError)
    ├── Unreachable   (network, timeouts, 5xx: temporary, retry with backoff)
    └── Rejected      (401/403/4xx: the token or the request is wrong; retrying will not help)
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

from agent.apply.admission import StateRefused, parse_state
from agent.config import AgentConfig
from agent.contract import DesiredState
from agent.errors import AgentError


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


@dataclass(frozen=True)
class LinkSettings:
    api_url: str
    appliance_id: str
    ip: str
    proxy: str | None = None
    ca_file: Path | None = None
    timeout: float = 10.0

    @classmethod
    def from_config(cls, config: AgentConfig, *, ca_root: Path = Path("/")) -> LinkSettings:
        assert config.apiUrl is not None
        scheme = urlsplit(config.apiUrl).scheme
        proxy = config.httpsProxy if scheme == "https" else config.httpProxy
        if proxy and _bypasses(config.apiUrl, config.noProxy):
            proxy = None
        ca = ca_root / config.caCert.lstrip("/") if config.caCert else None
        return cls(config.apiUrl, config.applianceId, config.ip, proxy=proxy, ca_file=ca)


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

    def register(self, bootstrap_token: str, *, hostname: str) -> str:
        """Register this appliance; returns its agent token."""
        response = self._send(
            "POST",
            "/v1/register",
            headers={"Authorization": f"Bearer {bootstrap_token}"},
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
        for a document that is not a well-formed DesiredState."""
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
            return parse_state(response.content)
        except StateRefused as e:
            e.digest = response.headers.get("etag", "").strip('"') or None
            raise

    def report(self, token: str, status: dict[str, Any]) -> None:
        self._send("POST", "/v1/status", headers={"Authorization": f"Bearer {token}"}, json=status)


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return f"{response.status_code} {detail or response.reason_phrase}"[:200]


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
