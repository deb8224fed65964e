"""Rendering: packs, values and templates → one DesiredState per appliance.

Templates run in a Jinja sandbox (:mod:`.sandbox`) within hard limits on time, memory and
output (:mod:`.limits`, :mod:`.guards`); values are layered in
:mod:`.values`; one cluster renders in :mod:`.clusters` and a site's appliances get their
documents in :mod:`.sites`. The same inputs always give the same bytes and digests.
"""

from .limits import MIB, LimitBroken, RenderLimits
from .parallel import Presigner, render_sites
from .sandbox import Sandbox, TemplateFailure
from .sites import Renderer, render_repository

__all__ = [
    "MIB",
    "LimitBroken",
    "Presigner",
    "RenderLimits",
    "Renderer",
    "Sandbox",
    "TemplateFailure",
    "render_repository",
    "render_sites",
]
