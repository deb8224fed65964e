"""Profile variables: formats, regexes, required values."""

from __future__ import annotations

import ipaddress
import re

from packaging.version import InvalidVersion, Version

from ..errors import mask
from ..models.common import Scalar
from ..models.profile import Variable


def format_problem(variable: Variable, value: Scalar) -> str | None:
    """Why ``value`` does not fit the variable, or None when it does; a sensitive variable's
    value is never part of the reason."""
    problem = _problem(variable, value)
    if problem is not None and variable.sensitive:
        return mask(problem, {repr(value), str(value)})
    return problem


def _problem(variable: Variable, value: Scalar) -> str | None:
    fmt = variable.format
    if fmt == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"variable '{variable.name}' must be a number (got {value!r})"
    elif fmt == "boolean":
        if not isinstance(value, bool):
            return f"variable '{variable.name}' must be true or false (got {value!r})"
    elif not isinstance(value, str):
        what = (
            "a string"
            if fmt == "string"
            else f"an {fmt} string"
            if fmt[0] == "i"
            else f"a {fmt} string"
        )
        return f"variable '{variable.name}' must be {what} (got {value!r})"
    elif fmt == "ipv4":
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            return f"variable '{variable.name}' must be an IPv4 address (got '{value}')"
    elif fmt == "ipv4cidr":
        try:
            ipaddress.IPv4Network(value)
        except ValueError:
            return f"variable '{variable.name}' must be an IPv4 CIDR (got '{value}')"
    elif fmt == "version":
        try:
            Version(value)
        except InvalidVersion:
            return f"variable '{variable.name}' must be a version like 1.2.3 (got '{value}')"
    if variable.regex is not None:
        try:
            if not re.fullmatch(variable.regex, str(value)):
                return f"variable '{variable.name}' must match /{variable.regex}/ (got {value!r})"
        except re.error:
            return None  # reported once, on the profile
    return None


def resolve_variables(
    variables: list[Variable], given: dict[str, Scalar]
) -> tuple[dict[str, Scalar], list[tuple[str | None, str]]]:
    """Profile defaults overlaid with a cluster's values; problems name the variable they
    concern (None for a missing one)."""
    resolved: dict[str, Scalar] = {}
    problems: list[tuple[str | None, str]] = []
    declared = {v.name: v for v in variables}
    for name in given:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            problems.append((name, f"unknown variable '{name}' (the profile declares: {known})"))
    for variable in variables:
        if variable.name in given:
            value = given[variable.name]
        elif variable.default is not None:
            value = variable.default
        else:
            if variable.required:
                problems.append((None, f"required variable '{variable.name}' is not set"))
            continue
        problem = format_problem(variable, value)
        if problem:
            problems.append((variable.name if variable.name in given else None, problem))
        resolved[variable.name] = value
    return resolved, problems
