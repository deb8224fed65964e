"""The fleet dashboard: server-rendered pages for operators, kept live by server-sent events
and htmx, served by the reconciler itself (no build step, no CDN)::

    GET  /login, POST /login   a token in, a session cookie out (:mod:`.sessions`)
    POST /logout
    GET  /                     the fleet: revision, rollout by wave, health, the site list
    GET  /sites/{site}         a site: windows, appliances, clusters, tasks, day-2, events
    GET  /revisions            recent commits and their outcome
    GET  /revisions/{sha}      one commit: errors, the sites it changed, its timeline
    POST /rollout/pause|resume|promote   admins, confirmed, with the session's CSRF token
    GET  /live                 server-sent events: "something changed" (:mod:`.live`)
    GET  /static/...           htmx (vendored), the stylesheet and the page script

Viewers see every page; admins also get the rollout's actions. Pages read the same views as
the operator API (:mod:`reconciler.views`), paged so that each costs what it shows.
"""

from .routes import dashboard_routes, static_files

__all__ = ["dashboard_routes", "static_files"]
