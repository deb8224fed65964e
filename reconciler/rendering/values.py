"""Value layering: pack defaults → chosen presets → profile layer values → cluster overrides.

Later layers win; mappings merge key by key, anything else (lists included) is replaced.
String values may hold Jinja: a value that is one ``{{ expression }}`` keeps the expression's
type (a number stays a number), any other templated string renders to a string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .sandbox import Sandbox

_SINGLE_EXPRESSION = re.compile(r"^\{\{(?!.*\{\{)(.*)\}\}$", re.DOTALL)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new mapping: ``override`` merged over ``base``."""
    out = dict(base)
    for key, value in override.items():
        current = out.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            out[key] = merge(current, value)
        else:
            out[key] = value
    return out


def choose_presets(
    profile_choice: list[str], cluster_choice: list[str], group_of: Mapping[str, str]
) -> list[str]:
    """A cluster's preset replaces the profile's preset of the same group."""
    cluster_groups = {group_of[name] for name in cluster_choice if name in group_of}
    kept = [name for name in profile_choice if group_of.get(name) not in cluster_groups]
    return kept + list(cluster_choice)


def render_values(sandbox: Sandbox, name: str, value: Any, context: dict[str, Any]) -> Any:
    """Render the Jinja in every string of ``value``; ``name`` labels errors."""
    if isinstance(value, str):
        if not sandbox.is_template(value):
            return value
        single = _SINGLE_EXPRESSION.match(value.strip())
        if single:
            return sandbox.evaluate(name, single.group(1), context)
        return sandbox.render(name, value, context)
    if isinstance(value, Mapping):
        return {k: render_values(sandbox, name, v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_values(sandbox, name, v, context) for v in value]
    return value
