"""``edgefleet serve``'s options for reporting results out: the forge that shows each
commit's fleet-level result, and the webhooks that receive notifications."""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast, get_args

from ..reporting import API_URLS, NOTIFICATIONS, Forge, Outbox, Reporter, Webhook
from ..reporting.forges import Kind
from ..reporting.webhooks import Format
from ..store import Store

OPTIONS = {  # name: (default, help), merged into serve's
    "forge": (None, "github or gitlab: report each commit's fleet-level result as its status"),
    "forge-repository": (None, "owner/name on GitHub; the project's path or ID on GitLab"),
    "forge-token-file": (None, "file holding a token that may set commit statuses"),
    "forge-api-url": (
        None,
        "the forge's API URL, for enterprise installs (default: "
        + ", ".join(f"{k} {v}" for k, v in API_URLS.items())
        + ")",
    ),
    "forge-context": ("edgefleet", "the name commit statuses carry"),
    "status-url": (
        None,
        "the page statuses and notifications link to (default: http(s)://LISTEN/v1/fleet)",
    ),
    "notify-url": (None, "comma-separated URLs that receive notifications (webhooks)"),
    "notify-format": ("json", "json (signed with --notify-secret-file) or slack"),
    "notify-secret-file": (None, "file holding the HMAC-SHA256 secret that signs notifications"),
    "notify-events": (",".join(NOTIFICATIONS), "the notifications sent, comma-separated"),
}


def reporter(options: dict[str, str | None], *, store: Store) -> Reporter | None:
    """The reporter the options ask for, None when they ask for none; raises ValueError."""
    link = options["status-url"] or _default_link(options)
    forge = _forge(options, link)
    webhooks = _webhooks(options, link)
    if forge is None and not webhooks:
        return None
    return Reporter(outbox=Outbox(store=store), forge=forge, webhooks=webhooks)


def _forge(options: dict[str, str | None], link: str) -> Forge | None:
    kind = options["forge"]
    if kind is None:
        for name in ("forge-repository", "forge-token-file", "forge-api-url"):
            if options[name] is not None:
                raise ValueError(f"--{name} needs --forge github or --forge gitlab")
        return None
    if kind not in get_args(Kind):
        raise ValueError(f"--forge must be github or gitlab (got {kind})")
    repository = options["forge-repository"]
    if not repository:
        raise ValueError("--forge needs --forge-repository")
    if kind == "github" and not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
        raise ValueError(f"--forge-repository must be owner/name on GitHub (got {repository})")
    token = _secret(options["forge-token-file"], "--forge-token-file")
    if token is None:
        raise ValueError("--forge needs --forge-token-file")
    api = options["forge-api-url"] or ""
    if api and not re.match(r"^https?://", api):
        raise ValueError(f"--forge-api-url must be an http(s) URL (got {api})")
    context = options["forge-context"] or "edgefleet"
    return Forge(cast(Kind, kind), repository, token, api, context, link)


def _webhooks(options: dict[str, str | None], link: str) -> list[Webhook]:
    urls = [u.strip() for u in (options["notify-url"] or "").split(",") if u.strip()]
    if not urls:
        return []
    shape = options["notify-format"] or "json"
    if shape not in get_args(Format):
        raise ValueError(f"--notify-format must be json or slack (got {shape})")
    secret = _secret(options["notify-secret-file"], "--notify-secret-file")
    if shape == "json" and secret is None:
        raise ValueError("JSON notifications are signed: --notify-url needs --notify-secret-file")
    events = {e.strip() for e in (options["notify-events"] or "").split(",") if e.strip()}
    unknown = sorted(events - set(NOTIFICATIONS))
    if unknown:
        raise ValueError(
            f"--notify-events: unknown {', '.join(unknown)} (known: {', '.join(NOTIFICATIONS)})"
        )
    for url in urls:
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError("--notify-url takes http(s) URLs")
    return [Webhook(url, cast(Format, shape), secret, frozenset(events), link) for url in urls]


def _secret(path: str | None, flag: str) -> str | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text().strip()
    except OSError as e:
        raise ValueError(f"{flag} {path}: {e.strerror}") from None
    if not text:
        raise ValueError(f"{flag} {path} is empty")
    return text


def _default_link(options: dict[str, str | None]) -> str:
    scheme = "https" if options.get("tls-cert") else "http"
    return f"{scheme}://{options['listen']}/v1/fleet"
