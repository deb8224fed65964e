"""Agents played by HTTP clients: register, poll the desired state, post status."""

from __future__ import annotations

from typing import Any

import httpx

BOOTSTRAP = "bootstrap-token-for-tests-0123456789"


class Agent:
    def __init__(self, base_url: str, appliance: str, *, bootstrap: str = BOOTSTRAP) -> None:
        self.appliance = appliance
        self.bootstrap = bootstrap
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.token: str | None = None

    def close(self) -> None:
        self.http.close()

    def register(self, **facts: str) -> httpx.Response:
        body = {
            "applianceId": self.appliance,
            "hostname": f"{self.appliance}.local",
            "ip": "192.168.10.20",
            "arch": "amd64",
            "agentVersion": "0.1.0",
            **facts,
        }
        answer = self.http.post(
            "/v1/register", json=body, headers={"Authorization": f"Bearer {self.bootstrap}"}
        )
        if answer.status_code == 200:
            self.token = answer.json()["token"]
        return answer

    def rotate(self, **facts: str) -> httpx.Response:
        """Register again presenting the current token: a new token replaces it."""
        assert self.token is not None, "register first"
        bootstrap, self.bootstrap = self.bootstrap, self.token
        try:
            return self.register(**facts)
        finally:
            self.bootstrap = bootstrap

    @property
    def auth(self) -> dict[str, str]:
        assert self.token is not None, "register first"
        return {"Authorization": f"Bearer {self.token}"}

    def desired(self, *, etag: str | None = None, wait: float | None = None) -> httpx.Response:
        headers = dict(self.auth)
        if etag is not None:
            headers["If-None-Match"] = f'"{etag}"'
        params = {"wait": wait} if wait is not None else None
        return self.http.get("/v1/desired", headers=headers, params=params)

    def digest(self) -> str | None:
        """The digest this appliance is served now (None: no state)."""
        answer = self.desired()
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return str(answer.json()["digest"])

    def report(
        self,
        digest: str | None,
        *,
        health: str = "healthy",
        phase: str = "Running",
        node_phase: str | None = None,
        error: str | None = None,
        events: list[dict[str, Any]] | None = None,
        cluster: str | None = None,
    ) -> httpx.Response:
        name = cluster or "cluster"
        body: dict[str, Any] = {
            "appliedDigest": digest,
            "health": health,
            "clusters": [
                {
                    "name": name,
                    "phase": phase,
                    "nodes": [{"name": f"{name}-node", "phase": node_phase or phase}]
                    if phase in ("Running", "Provisioning")
                    else [],
                    "tasks": [{"name": "create node", "state": "done", "progress": 100}],
                }
            ],
            "events": events or [],
        }
        if error is not None:
            body["error"] = {"digest": error, "message": "pulling image failed"}
        return self.http.post("/v1/status", json=body, headers=self.auth)

    def apply(self, *, health: str = "healthy") -> str | None:
        """Fetch the desired state and report it applied, Running and ``health``; with no
        state to apply, just a heartbeat."""
        answer = self.desired()
        if answer.status_code == 404:
            self.http.post("/v1/status", json={"health": health}, headers=self.auth)
            return None
        document = answer.raise_for_status().json()
        cluster = document["clusters"][0]["name"] if document["clusters"] else None
        self.report(document["digest"], health=health, cluster=cluster).raise_for_status()
        return str(document["digest"])
