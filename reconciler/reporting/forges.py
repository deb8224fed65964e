"""Commit statuses: a commit's fleet-level result as GitHub and GitLab show it beside the
commit, through their commit status APIs.

GitHub: ``POST {api}/repos/{owner}/{repo}/statuses/{sha}`` with a bearer token, states
pending, success, failure, error. GitLab: ``POST {api}/projects/{id}/statuses/{sha}`` with a
``PRIVATE-TOKEN``, states pending, running, success, failed, canceled. Each builds the
request; :mod:`.outbox` sends it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from .outbox import Request
from .results import CommitResult, Result

Kind = Literal["github", "gitlab"]
API_URLS: dict[Kind, str] = {
    "github": "https://api.github.com",
    "gitlab": "https://gitlab.com/api/v4",
}
DESCRIPTION_CHARS = 140  # GitHub refuses longer descriptions
_STATES: dict[Kind, dict[Result, str]] = {
    "github": {
        "pending": "pending",
        "success": "success",
        "failure": "failure",
        "superseded": "error",
    },
    "gitlab": {
        "pending": "running",
        "success": "success",
        "failure": "failed",
        "superseded": "canceled",
    },
}
USER_AGENT = "edgefleet-reconciler"


@dataclass(frozen=True)
class Forge:
    """Where commit statuses go: ``repository`` is ``owner/name`` on GitHub, the project's
    path (``group/project``) or numeric ID on GitLab."""

    kind: Kind
    repository: str
    token: str
    api_url: str = ""  # empty: the public service (enterprise installs set their own)
    context: str = "edgefleet"  # the status's name beside the commit
    link: str | None = None  # the page the status links to (the fleet's status)

    @property
    def destination(self) -> str:
        return f"{self.kind} {self.repository}"

    def request(self, result: CommitResult) -> Request:
        base = (self.api_url or API_URLS[self.kind]).rstrip("/")
        description = result.description
        if len(description) > DESCRIPTION_CHARS:
            description = description[: DESCRIPTION_CHARS - 1] + "…"
        state = _STATES[self.kind][result.result]
        sha = quote(result.revision, safe="")
        body: dict[str, str] = {"state": state, "description": description}
        if self.kind == "github":
            url = f"{base}/repos/{self.repository}/statuses/{sha}"
            headers = {
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": "2022-11-28",
            }
            body["context"] = self.context
        else:
            url = f"{base}/projects/{quote(self.repository, safe='')}/statuses/{sha}"
            headers = {"PRIVATE-TOKEN": self.token}
            body["name"] = self.context
        if self.link:
            body["target_url"] = self.link
        headers |= {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        return Request("POST", url, headers, json.dumps(body).encode(), redact=(self.token,))
