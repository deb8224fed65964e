"""Rendering: packs, values and templates → one DesiredState per appliance.

Templates run in a Jinja sandbox (:mod:`.sandbox`); values are layered in
:mod:`.values`; one cluster renders in :mod:`.clusters` and a site's appliances get their
documents in :mod:`.sites`. The same inputs always give the same bytes and digests.
"""

from .parallel import render_sites
from .sandbox import Sandbox, TemplateFailure
from .sites import Renderer, render_repository

__all__ = ["Renderer", "Sandbox", "TemplateFailure", "render_repository", "render_sites"]
