"""Outgoing webhooks: ``revision.failed``, ``rollout.halted``, ``rollout.completed`` and
``wave.opened`` as JSON, signed the way the push webhook edgefleet receives is
(:mod:`reconciler.api.pushes`): HMAC-SHA256 of the raw body with the shared secret, in
``X-Edgefleet-Signature-256: sha256=<hex>``; or as a Slack message (``{"text": ...}``, for
Slack's incoming webhooks and the chat tools that read the same shape).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

from .forges import USER_AGENT
from .outbox import Request
from .results import NOTIFICATIONS, Notification

Format = Literal["json", "slack"]
_ICONS = {
    "revision.failed": ":x:",
    "rollout.halted": ":rotating_light:",
    "rollout.completed": ":white_check_mark:",
    "wave.opened": ":arrow_forward:",
}


@dataclass(frozen=True)
class Webhook:
    url: str
    format: Format = "json"
    secret: str | None = None  # signs JSON deliveries
    events: frozenset[str] = frozenset(NOTIFICATIONS)
    link: str | None = None  # the fleet's status page, linked from each notification

    @property
    def destination(self) -> str:
        """The URL without its path and query, which may hold a token (Slack's do)."""
        parts = urlsplit(self.url)
        return f"webhook {parts.scheme}://{parts.netloc}"

    def request(self, note: Notification) -> Request:
        if self.format == "slack":
            body = json.dumps({"text": self._slack_text(note)}).encode()
        else:
            document = {
                "event": note.event,
                "revision": note.revision,
                "at": datetime.fromtimestamp(note.at, UTC).isoformat().replace("+00:00", "Z"),
                "level": note.level,
                "message": note.message,
                "link": self.link,
            }
            body = json.dumps(document, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Edgefleet-Event": note.event,
            "X-Edgefleet-Delivery": str(uuid.uuid4()),
        }
        if self.secret is not None:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Edgefleet-Signature-256"] = f"sha256={digest}"
        return Request("POST", self.url, headers, body, redact=(self.url,))

    def _slack_text(self, note: Notification) -> str:
        text = f"{_ICONS[note.event]} *{note.event}* {note.message}"
        if self.link:
            text += f" (<{self.link}|fleet status>)"
        return text
