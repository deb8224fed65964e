"""Reading fleet files: YAML with positions (``yamldocs``), models (``documents``), and the
repository layout (``repository``)."""

from .documents import Doc, Parsed, parse_file, to_model
from .repository import FleetRepo, ParseCache, SiteFiles, load_repository
from .yamldocs import LineIndex, YamlError, parse

__all__ = [
    "Doc",
    "FleetRepo",
    "LineIndex",
    "ParseCache",
    "Parsed",
    "SiteFiles",
    "YamlError",
    "load_repository",
    "parse",
    "parse_file",
    "to_model",
]
