"""The pack registry: built-in packs from ``templates/packs`` plus the repository's own.

A pack version lives in ``<root>/<pack>/<version>/`` with ``pack.yaml``, ``values.yaml``,
``presets.yaml`` and ``manifests/``. A repository pack with the same name and version as a
built-in one replaces it. Versions are either exact (``1.30.6``) or trains (``1.x``,
``1.30.x``) that resolve to the newest matching version.
"""

from .registry import (
    BUILTIN_FOLDER,
    BUILTIN_ROOT,
    PackRegistry,
    PackVersion,
    is_train,
    load_registry,
    version_matches,
)

__all__ = [
    "BUILTIN_FOLDER",
    "BUILTIN_ROOT",
    "PackRegistry",
    "PackVersion",
    "is_train",
    "load_registry",
    "version_matches",
]
