"""The read side: fleet, site and revision status as operators see them (:class:`FleetViews`
builds the documents of :mod:`.documents` from the store), and the figures ``/metrics``
exports. Nothing here writes."""

from .documents import (
    FleetView,
    Overview,
    RevisionDetail,
    RevisionsView,
    RolloutView,
    SiteList,
    SiteView,
    SourceView,
)
from .reading import PER_PAGE, Figures, FleetViews

__all__ = [
    "PER_PAGE",
    "Figures",
    "FleetView",
    "FleetViews",
    "Overview",
    "RevisionDetail",
    "RevisionsView",
    "RolloutView",
    "SiteList",
    "SiteView",
    "SourceView",
]
