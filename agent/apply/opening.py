"""Opening a state's encrypted manifests (SOPS, age) with the appliance's identity, after
admission and before anything of the state is kept or applied. A manifest that does not
open refuses the whole state with the reason (:class:`SecretRefused`): the last good state
keeps running and the reconciler hears why. The plaintext stays in memory until the driver
writes it into the node; no message ever carries it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from agent.apply.admission import StateRefused
from agent.contract import DesiredState
from agent.secrets.errors import SecretError
from agent.secrets.keys import read_identities
from agent.secrets.opening import open_document

# cluster -> position of the manifest in the cluster's list -> its plaintext
Opened = Mapping[str, Mapping[int, str]]


class SecretRefused(StateRefused):
    """A manifest of the state does not open here: no identity, the wrong one, a value or
    the MAC tampered with, or a document that is not well formed."""


def open_manifests(state: DesiredState, *, age_key: Path | None) -> Opened:
    """The plaintext of every encrypted manifest of the state's present clusters; raises
    :class:`SecretRefused` naming the cluster, the manifest and the reason."""
    wanted = [
        (cluster.name, index, manifest)
        for cluster in state.clusters
        if cluster.phase == "present"
        for index, manifest in enumerate(cluster.manifests)
        if manifest.encryption is not None
    ]
    if not wanted:
        return {}
    first = f"cluster {wanted[0][0]!r}: manifest {wanted[0][2].name!r}"
    if age_key is None:
        raise SecretRefused(f"{first} is encrypted and this agent has no age identity")
    try:
        identities = read_identities(age_key)
    except SecretError as e:
        raise SecretRefused(f"{first} is encrypted and the age identity is unusable: {e}") from None
    opened: dict[str, dict[int, str]] = {}
    for cluster, index, manifest in wanted:
        try:
            text = open_document(manifest.content, identities).text
        except SecretError as e:
            raise SecretRefused(
                f"cluster {cluster!r}: manifest {manifest.name!r} does not open: {e}"
            ) from None
        opened.setdefault(cluster, {})[index] = text
    return opened
