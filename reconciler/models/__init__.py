"""The fleet repository's kinds as strict pydantic models, and pack metadata."""

from .cluster import NETWORK_KEYS, Cluster, NodePool
from .common import API_VERSION, parse_duration
from .fleet import Fleet
from .pack import PackMeta, Preset, PresetsFile
from .profile import CORE_LAYERS, ChartLayer, ClusterProfile, Manifest, ManifestLayer, PackLayer
from .site import Appliance, Site

KINDS: dict[str, type[Fleet | Site | Appliance | ClusterProfile | Cluster]] = {
    "Fleet": Fleet,
    "Site": Site,
    "Appliance": Appliance,
    "ClusterProfile": ClusterProfile,
    "Cluster": Cluster,
}

__all__ = [
    "API_VERSION",
    "CORE_LAYERS",
    "KINDS",
    "NETWORK_KEYS",
    "Appliance",
    "ChartLayer",
    "Cluster",
    "ClusterProfile",
    "Fleet",
    "Manifest",
    "ManifestLayer",
    "NodePool",
    "PackLayer",
    "PackMeta",
    "Preset",
    "PresetsFile",
    "Site",
    "parse_duration",
]
