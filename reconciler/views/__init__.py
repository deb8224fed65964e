"""The read side: fleet, site and revision status as operators see them (:class:`FleetViews`
builds the documents of :mod:`.documents` from the store), and the figures ``/metrics``
exports. Nothing here writes."""

from .documents import FleetView, RevisionsView, RolloutView, SiteView, SourceView
from .reading import Figures, FleetViews

__all__ = [
    "Figures",
    "FleetView",
    "FleetViews",
    "RevisionsView",
    "RolloutView",
    "SiteView",
    "SourceView",
]
