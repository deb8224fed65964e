"""Rendering dashboard pages: who asks (a session cookie or a Bearer header), the Jinja
templates, and the headers every page carries.

Pages are whole HTML documents; a request from htmx naming one of a page's live parts
(``HX-Target``) gets that part alone. Every page says how long the server took
(``Server-Timing: app;dur=MS``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ...clocks import Clock, epoch
from ..auth import MAX_TOKEN
from ..operators import Operator, OperatorTokens
from .sessions import COOKIE, Session, Sessions

HERE = Path(__file__).parent
MAX_FORM = 4096  # bytes: a token, a CSRF token and a wave name
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Vary": "Cookie, Authorization, HX-Request, HX-Target",
}


@dataclass(frozen=True)
class Visitor:
    """An operator on a page: from a session cookie (``session`` set: acting needs its CSRF
    token) or from a Bearer header (``session`` None: no browser sends that by itself)."""

    operator: Operator
    session: Session | None

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["ago"] = _ago
    env.filters["short"] = lambda digest: (digest or "")[7:19] or "-"
    env.filters["percent"] = lambda part, whole: round(100 * part / whole) if whole else 0
    env.globals["quote"] = quote
    return env


class Pages:
    def __init__(
        self,
        *,
        tokens: OperatorTokens,
        sessions: Sessions,
        env: Environment,
        clock: Clock,
        stamp: Callable[[], str],
    ) -> None:
        self.tokens = tokens
        self.sessions = sessions
        self.env = env
        self.clock = clock
        self.stamp = stamp  # what a whole page shows, for /live?since= (read when shown)

    def visitor(self, request: Request) -> Visitor | None:
        """Who asks: a Bearer header wins over a cookie; None when neither is good."""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN:
                return None
            operator = self.tokens.authenticate(token)
            return Visitor(operator, None) if operator else None
        session = self.sessions.find(request.cookies.get(COOKIE))
        return Visitor(session.operator, session) if session else None

    def refuse(self, request: Request) -> Response:
        """No one logged in: a browser asking for a page goes to the login form; htmx is
        told to go there; anything else gets 401."""
        target = _login_target(request)
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={**HEADERS, "HX-Redirect": target})
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(target, status_code=303, headers=HEADERS)
        return Response("an operator token or a session is required\n", 401, headers=HEADERS)

    def forbid(self, request: Request, visitor: Visitor, why: str) -> HTMLResponse:
        return self.render(request, "refused.html", {"why": why}, visitor=visitor, status=403)

    def acting(self, request: Request, visitor: Visitor, form: dict[str, str]) -> str | None:
        """Why a request that acts on a session is refused (None: it may act): it must
        come from this server's own pages (Origin) and carry the session's CSRF token."""
        if not same_origin(request):
            return "this request did not come from the dashboard's own pages"
        if visitor.session is None:
            return None
        sent = form.get("csrf") or request.headers.get("x-csrf-token")
        if not self.sessions.csrf_matches(visitor.session, sent):
            return "the form is out of date or did not come from the dashboard: reload the page"
        return None

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        *,
        visitor: Visitor | None,
        status: int = 200,
        started: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        html = self.env.get_template(template).render(
            **context,
            me=visitor.operator if visitor else None,
            csrf=visitor.csrf if visitor else "",
            path=request.url.path,
            stamp=self.stamp,
            now=datetime.fromtimestamp(epoch(self.clock), UTC),
        )
        took = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        timing = {"Server-Timing": f"app;dur={took:.1f}"} if started is not None else {}
        return HTMLResponse(html, status, headers={**HEADERS, **timing, **(headers or {})})


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form (first value of each field); larger bodies read as empty."""
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=20)
    return {name: values[0] for name, values in fields.items()}


def part(request: Request) -> str | None:
    """The live part htmx asks for (its target's id), or None for the whole page."""
    if request.headers.get("hx-request") and not request.headers.get("hx-history-restore-request"):
        return request.headers.get("hx-target")
    return None


def same_origin(request: Request) -> bool:
    """Whether the browser says the request comes from this server's pages (no Origin:
    not a browser's cross-site form or fetch, which always send one)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_target(request: Request) -> str:
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-current-url"):
        current = urlsplit(request.headers["hx-current-url"])
        wanted = current.path + (f"?{current.query}" if current.query else "")
    return "/login" if wanted == "/" else f"/login?next={quote(safe_next(wanted), safe='')}"


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "never"


def _ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    seconds = int((now - value).total_seconds())
    if seconds < 0:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"
