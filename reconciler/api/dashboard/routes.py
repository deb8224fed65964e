"""The dashboard's routes: thin handlers that read a view, render a template, or hand an
admin's action to the rollout service."""


# No `from __future__ import annotations`: FastAPI reads these annotations at runtime.

import time
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from ...clocks import Clock
from ...rollout import RolloutConflict
from ...store import SiteQuery
from ...views import PER_PAGE, SiteList
from ..services import Services
from .live import Pulse, events
from .pages import HEADERS, HERE, Pages, part, read_form, safe_next, same_origin, templates
from .sessions import COOKIE, Sessions

SiteName = Annotated[str, Path(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
Sha = Annotated[str, Path(pattern=r"^[0-9a-f]{7,64}$")]
STATES = {  # site states in the filter, as operators read them
    "unchanged": "up to date",
    "pending": "waiting for its wave",
    "rolling": "rolling",
    "soaking": "soaking",
    "done": "done",
    "failed": "failed",
}
HEALTH = ("healthy", "unhealthy", "unknown")


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


def dashboard_routes(services: Services, *, clock: Clock) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    sessions = Sessions(services.operators, clock=clock)
    pulse = Pulse(read=services.views.stamp, notifier=services.notifier, clock=clock)
    pages = Pages(
        tokens=services.operators,
        sessions=sessions,
        env=templates(),
        clock=clock,
        stamp=pulse.now,
    )
    views = services.views

    # -- logging in and out ------------------------------------------------------------
    @router.get("/login")
    def login_form(request: Request, next: str = "/") -> Response:
        context = {"next": safe_next(next), "error": None}
        return pages.render(request, "login.html", context, visitor=pages.visitor(request))

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await read_form(request)
        target = safe_next(form.get("next"))
        token = form.get("token", "").strip()
        operator = services.operators.authenticate(token) if token else None
        if operator is None or not same_origin(request):
            context = {"next": target, "error": "That token was refused."}
            return pages.render(request, "login.html", context, visitor=None, status=401)
        answer = RedirectResponse(target, status_code=303, headers=HEADERS)
        answer.set_cookie(
            COOKIE,
            sessions.open(operator),
            max_age=sessions.lifetime,
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
        )
        return answer

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        visitor = pages.visitor(request)
        if visitor is not None:
            refused = pages.acting(request, visitor, await read_form(request))
            if refused:
                return pages.forbid(request, visitor, refused)
        answer = RedirectResponse("/login", status_code=303, headers=HEADERS)
        answer.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return answer

    # -- the pages ---------------------------------------------------------------------
    @router.get("/")
    def fleet(
        request: Request,
        q: str = "",
        wave: str = "",
        state: str = "",
        health: str = "",
        label: str = "",
        page: str = "1",
    ) -> Response:
        started = time.perf_counter()
        visitor = pages.visitor(request)
        if visitor is None:
            return pages.refuse(request)
        filters = {
            "q": q.strip()[:100],
            "wave": wave[:63],
            "state": state if state in STATES else "",
            "health": health if health in HEALTH else "",
            "label": label.strip()[:200],
        }
        query = SiteQuery(
            state=filters["state"] or None,
            health=filters["health"] or None,
            label=SiteQuery.label_of(filters["label"]),
            search=filters["q"],
        )
        wanted = part(request)
        context: dict[str, object] = {
            "filters": filters,
            "states": STATES,
            "healths": HEALTH,
            "query": urlencode({k: v for k, v in filters.items() if v}),
        }
        if wanted != "sites":
            context["overview"] = views.overview()
        if wanted != "overview":
            context["list"] = views.site_list(
                query, wave=filters["wave"] or None, page=_number(page), per_page=PER_PAGE
            )
        template = {"overview": "_overview.html", "sites": "_sites.html"}.get(
            wanted or "", "fleet.html"
        )
        headers = {}
        if wanted == "sites" and request.headers.get("hx-trigger") != "sites":
            # a filter or another page of the list: the address bar shows it, tidily
            shown = {k: v for k, v in filters.items() if v}
            listed = context["list"]
            if isinstance(listed, SiteList) and listed.page > 1:
                shown["page"] = str(listed.page)
            headers["HX-Push-Url"] = f"/?{urlencode(shown)}" if shown else "/"
        return pages.render(
            request, template, context, visitor=visitor, started=started, headers=headers
        )

    @router.get("/sites/{site}")
    def site(request: Request, site: SiteName) -> Response:
        started = time.perf_counter()
        visitor = pages.visitor(request)
        if visitor is None:
            return pages.refuse(request)
        view = views.site(site)
        if view is None:
            context = {"what": f"There is no site {site}."}
            return pages.render(
                request, "missing.html", context, visitor=visitor, status=404, started=started
            )
        template = "_site.html" if part(request) == "site-live" else "site.html"
        return pages.render(request, template, {"site": view}, visitor=visitor, started=started)

    @router.get("/revisions")
    def revisions(request: Request) -> Response:
        started = time.perf_counter()
        visitor = pages.visitor(request)
        if visitor is None:
            return pages.refuse(request)
        context = {"revisions": views.revisions(50).revisions}
        template = "_revisions.html" if part(request) == "revisions-live" else "revisions.html"
        return pages.render(request, template, context, visitor=visitor, started=started)

    @router.get("/revisions/{sha}")
    def revision(request: Request, sha: Sha, page: str = "1") -> Response:
        started = time.perf_counter()
        visitor = pages.visitor(request)
        if visitor is None:
            return pages.refuse(request)
        detail = views.revision(sha, page=_number(page), per_page=PER_PAGE * 2)
        if detail is None:
            context = {"what": f"No revision {sha} was recorded."}
            return pages.render(
                request, "missing.html", context, visitor=visitor, status=404, started=started
            )
        template = "_revision.html" if part(request) == "revision-live" else "revision.html"
        return pages.render(request, template, {"detail": detail}, visitor=visitor, started=started)

    # -- an admin's hand on the rollout -------------------------------------------------
    @router.post("/rollout/{action}")
    async def act(request: Request, action: Literal["pause", "resume", "promote"]) -> Response:
        started = time.perf_counter()
        visitor = pages.visitor(request)
        if visitor is None:
            return pages.refuse(request)
        form = await read_form(request)
        refused = pages.acting(request, visitor, form)
        if refused is None and not visitor.operator.may("admin"):
            refused = f"{action} needs an admin token ({visitor.operator.name} is a viewer)"
        if refused:
            return pages.forbid(request, visitor, refused)
        wave = form.get("wave", "")[:63]
        if form.get("confirmed") != "yes":  # without script: ask on a page of its own
            asked = {"action": action, "wave": wave}
            return pages.render(request, "confirm.html", asked, visitor=visitor)
        by = visitor.operator.name
        try:
            if action == "pause":
                changed = await run_in_threadpool(lambda: services.rollout.pause(by=by))
                notice = (
                    f"Rollout paused by {by}." if changed else "The rollout was paused already."
                )
            elif action == "resume":
                changed = await run_in_threadpool(lambda: services.rollout.resume(by=by))
                notice = f"Rollout resumed by {by}." if changed else "Nothing was paused or halted."
            else:
                await run_in_threadpool(lambda: services.rollout.promote(wave, by=by))
                notice = f"Wave {wave} promoted by {by}."
        except RolloutConflict as e:
            notice = f"Not done: {e}."
        if part(request) != "overview":
            return RedirectResponse("/", status_code=303, headers=HEADERS)
        overview = await run_in_threadpool(views.overview)
        context: dict[str, object] = {"overview": overview, "notice": notice}
        return pages.render(request, "_overview.html", context, visitor=visitor, started=started)

    # -- live updates --------------------------------------------------------------------
    @router.get("/live")
    def live(request: Request, since: str | None = None) -> Response:
        if pages.visitor(request) is None:
            return pages.refuse(request)
        return StreamingResponse(
            events(pulse, since[:64] if since else None),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router


def _number(text: str) -> int:
    return int(text) if text.isdigit() and len(text) <= 7 and int(text) > 0 else 1
