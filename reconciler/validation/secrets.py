"""Rules for secrets in the repository: every SOPS file a manifest names is well formed, and
sealed for every appliance that will receive it (those running a control-plane node of a
cluster that installs it); a plaintext Kubernetes Secret with data is found for ``validate``
to warn about (or refuse, with ``--forbid-plaintext-secrets``). Nothing here decrypts."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from agent.secrets.documents import Document, load_yaml
from agent.secrets.errors import MalformedSecret
from agent.secrets.values import read_sealed

from ..errors import Diagnostic
from ..loading import Doc, FleetRepo, SiteFiles
from ..loading.files import FileReference, file_references, manifests_of
from ..models import Cluster
from .clusters import ResolvedCluster

ENCRYPT_HINT = "edgefleet secret encrypt"


def check_sealed_files(repo: FleetRepo) -> Iterator[Diagnostic]:
    """Every SOPS file a manifest names reads as a sealed SOPS 3.x document with age
    recipients (reported at each ``file:`` that names it)."""
    for ref in file_references([*repo.all_profiles(), *repo.all_clusters()]):
        source = repo.manifest_files.get(ref.path or "")
        if source is None or not source.sops:
            continue
        try:
            read_sealed(source.text)
        except MalformedSecret as e:
            name = ref.manifest.name
            yield ref.at(f"manifest {name}: {source.path} is not a well-formed SOPS document: {e}")


def age_recipients(repo: FleetRepo, site: str | None) -> list[tuple[str, str | None]]:
    """(appliance, its ageRecipient or None) for a site's appliances, or the whole fleet's."""
    chosen = [repo.sites[site]] if site is not None else list(repo.sites.values())
    return sorted(
        (a.model.metadata.name, a.model.spec.ageRecipient) for s in chosen for a in s.appliances
    )


def check_file_places(repo: FleetRepo) -> Iterator[Diagnostic]:
    """A site's documents name files in their own site folder or outside ``sites/``; fleet
    profiles name files outside ``sites/`` (so a change to a site's folder is that site's)."""
    for ref in file_references([*repo.all_profiles(), *repo.all_clusters()]):
        if ref.path is None or not ref.path.startswith("sites/"):
            continue
        parts = ref.doc.path.split("/")
        own = f"sites/{parts[1]}/" if parts[0] == "sites" else None
        if own is None:
            yield ref.at(
                f"manifest file '{ref.manifest.file}' is in a site's folder; a fleet profile "
                "names files outside sites/"
            )
        elif not ref.path.startswith(own):
            yield ref.at(
                f"manifest file '{ref.manifest.file}' is in another site's folder; site "
                f"{parts[1]} names files in its own folder or outside sites/"
            )


def check_recipients(
    repo: FleetRepo, site: SiteFiles, doc: Doc[Cluster], resolved: ResolvedCluster
) -> Iterator[Diagnostic]:
    """Each SOPS file the cluster installs is sealed for each appliance that receives it."""
    receivers = doc.model.spec.control_plane_appliances()
    appliances = {a.model.metadata.name: a.model for a in site.appliances}
    profiles = {rl.profile.path: rl.profile for rl in resolved.layers}
    for ref in file_references([*profiles.values(), doc]):
        document = _sealed(repo, ref)
        if document is None:
            continue
        sealed_for = {stanza.recipient for stanza in document.metadata.age}
        for appliance_id in receivers:
            appliance = appliances.get(appliance_id)
            if appliance is None:
                continue  # reported by the pool rules
            recipient = appliance.spec.ageRecipient
            where = f"site {site.name}, cluster {doc.model.metadata.name}"
            if recipient is None:
                yield ref.at(
                    f"manifest {ref.manifest.name} is a SOPS file, and appliance "
                    f"{appliance_id}, which receives it, has no spec.ageRecipient ({where})"
                )
            elif recipient not in sealed_for:
                yield ref.at(
                    f"manifest {ref.manifest.name}: {ref.path} is not encrypted for appliance "
                    f"{appliance_id} ({recipient}), which receives it ({where}); encrypt it "
                    f"again: {ENCRYPT_HINT} --recipients-for {site.name}"
                )


def _sealed(repo: FleetRepo, ref: FileReference) -> Document | None:
    source = repo.manifest_files.get(ref.path or "")
    if source is None or not source.sops:
        return None
    return _read_once(source.text)


@functools.lru_cache(maxsize=256)
def _read_once(text: str) -> Document | None:
    """A SOPS file a fleet profile names is read once, not once per cluster using it."""
    try:
        return read_sealed(text)
    except MalformedSecret:
        return None  # reported by check_sealed_files


def plaintext_secrets(repo: FleetRepo) -> list[Diagnostic]:
    """Manifests kept in the repository as plaintext (a file that is not SOPS, or inline
    content) that are a Kubernetes Secret with data: they should be sealed."""
    docs: list[Doc[Any]] = [*repo.all_profiles(), *repo.all_clusters()]
    found = []
    for ref in file_references(docs):
        source = repo.manifest_files.get(ref.path or "")
        if source is not None and not source.sops and _is_secret_with_data(source.text):
            found.append(
                ref.at(
                    f"manifest {ref.manifest.name}: {source.path} is a Kubernetes Secret with "
                    f"data in plaintext; seal it with SOPS ({ENCRYPT_HINT} {source.path} "
                    "--recipients-for SITE)"
                )
            )
    for doc in docs:
        for loc, manifest in manifests_of(doc):
            if manifest.content is not None and _is_secret_with_data(manifest.content):
                found.append(
                    doc.at(
                        (*loc, "content"),
                        f"manifest {manifest.name} is a Kubernetes Secret with data in "
                        f"plaintext; move it to a file sealed with SOPS ({ENCRYPT_HINT} FILE "
                        "--recipients-for SITE)",
                    )
                )
    return sorted(found)


def _is_secret_with_data(text: str) -> bool:
    try:
        documents = load_yaml(text)
    except MalformedSecret:
        return False  # a template that is not YAML yet, or not YAML at all
    return any(
        document.get("kind") == "Secret"
        and any(isinstance(document.get(key), dict) and document[key] for key in _DATA)
        for document in documents
    )


_DATA = ("data", "stringData")
