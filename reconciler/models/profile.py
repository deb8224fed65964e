"""The ``ClusterProfile`` kind: an ordered stack of layers (packs, Helm charts, raw manifests)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from .common import (
    Labels,
    Name,
    NonEmptyStr,
    PlainFileName,
    RelativePath,
    Scalar,
    Strict,
    Values,
)

LayerKind = Literal["os", "k8s", "cni", "csi", "addon"]
CORE_LAYERS: tuple[LayerKind, ...] = ("os", "k8s", "cni", "csi")
VariableFormat = Literal["string", "number", "boolean", "ipv4", "ipv4cidr", "version"]


class Manifest(Strict):
    """A raw manifest: written here (``content``, a template) or a file of the repository
    (``file``, relative to this document's folder; a SOPS file passes through encrypted)."""

    name: PlainFileName
    content: str | None = None
    file: RelativePath | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Manifest:
        if (self.content is None) == (self.file is None):
            raise ValueError("a manifest has either content or file")
        return self


class PackLayer(Strict):
    layer: LayerKind
    pack: Name
    version: NonEmptyStr
    values: Values = {}
    presets: list[NonEmptyStr] = []
    manifests: list[Manifest] = []


class Chart(Strict):
    repo: NonEmptyStr
    name: NonEmptyStr
    version: NonEmptyStr
    namespace: Name


class ChartLayer(Strict):
    layer: Literal["addon"]
    chart: Chart
    values: Values = {}


class ManifestLayer(Strict):
    layer: Literal["addon"]
    name: Name
    manifests: Annotated[list[Manifest], Field(min_length=1)]


# The three shapes of a layer are told apart by their keys. Pydantic puts the chosen tag into
# error locations; LAYER_TAGS lets error reporting leave them out again.
LAYER_TAGS = frozenset({"<pack layer>", "<chart layer>", "<manifest layer>"})


def _layer_shape(value: Any) -> str:
    def has(key: str) -> bool:
        return key in value if isinstance(value, dict) else hasattr(value, key)

    if has("pack"):
        return "<pack layer>"
    return "<chart layer>" if has("chart") else "<manifest layer>"


Layer = Annotated[
    Annotated[PackLayer, Tag("<pack layer>")]
    | Annotated[ChartLayer, Tag("<chart layer>")]
    | Annotated[ManifestLayer, Tag("<manifest layer>")],
    Discriminator(_layer_shape),
]


class Variable(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    format: VariableFormat = "string"
    description: str = ""
    default: Scalar | None = None
    required: bool = False
    regex: str | None = None
    sensitive: bool = False


class ProfileSpec(Strict):
    type: Literal["full", "infra", "add-on"]
    environment: Literal["edge"] = "edge"
    virtualized: bool = False
    variables: list[Variable] = []
    layers: list[Layer] = []


class ProfileMetadata(Strict):
    name: Name
    version: NonEmptyStr
    description: str = ""
    tags: Labels = {}


class ClusterProfile(Strict):
    apiVersion: Literal["edgefleet.dev/v1"]
    kind: Literal["ClusterProfile"]
    metadata: ProfileMetadata
    spec: ProfileSpec
