"""What plan says of a sealed (SOPS) manifest: that it changed and under which keys, judged
from the ciphertexts; a value, sealed or not, is never shown."""

from __future__ import annotations

from agent.secrets.documents import read_document
from agent.secrets.errors import MalformedSecret


def sealed_keys(text: str) -> dict[str, tuple[object, ...]]:
    """Each encrypted key's sealed values (a list's several), by dotted path."""
    try:
        document = read_document(text)
    except MalformedSecret:
        return {}
    found: dict[str, tuple[object, ...]] = {}
    for path, value in document.leaves():
        if value is not None and document.metadata.rule.encrypts(path):
            dotted = ".".join(path)
            found[dotted] = (*found.get(dotted, ()), value)
    return found


def secret_change(before: str | None, after: str | None) -> str:
    """``added (keys: a, b)``, ``removed``, ``changed (keys: a)`` or ``changed (recipients
    or metadata only)``."""
    if before is None or after is None:
        if after is None:
            return "removed"
        return f"added (keys: {', '.join(sealed_keys(after)) or 'none'})"
    old, new = sealed_keys(before), sealed_keys(after)
    changed = [key for key in dict.fromkeys([*old, *new]) if old.get(key) != new.get(key)]
    if not changed:
        return "changed (recipients or metadata only)"
    return f"changed (keys: {', '.join(changed)})"
