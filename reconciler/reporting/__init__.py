"""Reporting: each commit's fleet-level result back to the forge, and notifications out.

The rollout service hands :class:`Reporter` the events of each decision once it committed
(``RolloutService(on_events=...)``); the reporter turns them into commit statuses for GitHub
or GitLab (:mod:`.forges`: pending while rolling, success when every wave is done, failure
for a commit that does not validate or a halted rollout) and webhook notifications
(:mod:`.webhooks`), and hands them to the :class:`Outbox`, whose worker sends them in the
background and records each delivery in the store.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..store import EventRecord
from .forges import API_URLS, Forge
from .outbox import Delivery, Outbox, Request
from .results import NOTIFICATIONS, CommitResult, Notification, commit_result, notification
from .webhooks import Webhook

__all__ = [
    "API_URLS",
    "NOTIFICATIONS",
    "CommitResult",
    "Delivery",
    "Forge",
    "Notification",
    "Outbox",
    "Reporter",
    "Request",
    "Webhook",
]


class Reporter:
    """Called with the events a rollout decision committed; returns at once."""

    def __init__(
        self, *, outbox: Outbox, forge: Forge | None = None, webhooks: Sequence[Webhook] = ()
    ) -> None:
        self.outbox = outbox
        self.forge = forge
        self.webhooks = tuple(webhooks)

    def __call__(self, events: Sequence[EventRecord]) -> None:
        for event in events:
            result = commit_result(event) if self.forge is not None else None
            if result is not None and self.forge is not None:
                self.outbox.submit(
                    Delivery(
                        destination=self.forge.destination,
                        kind="commit-status",
                        event=result.result,
                        revision=result.revision,
                        request=self.forge.request(result),
                        key=f"status {result.revision}",
                    )
                )
            note = notification(event)
            if note is None:
                continue
            for hook in self.webhooks:
                if note.event in hook.events:
                    self.outbox.submit(
                        Delivery(
                            destination=hook.destination,
                            kind="webhook",
                            event=note.event,
                            revision=note.revision,
                            request=hook.request(note),
                        )
                    )
