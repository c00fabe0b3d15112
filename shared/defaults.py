"""Defaults: the Pki with the API's documented defaults filled in, all read from the schema.

Stored objects keep only what the user wrote (the CRD carries no defaults), so
the issuer and ``lint`` call this to see what will actually be issued, and a
default can change in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from shared.durations import DurationError, format_duration, parse_duration
from shared.schema import PKI_SCHEMA

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SECRET_TEMPLATE: str = PKI_SCHEMA["properties"]["spec"]["properties"]["secretName"][
    "x-pkiwarden-default"
]


def apply_defaults(pki: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
    """A copy of ``pki`` with defaults applied; the input is never modified.

    ``namespace`` defaults to ``metadata.namespace``; without either, DNS names
    (which contain the namespace) are left unset. Fields of the wrong type are
    left as they are for validation to report.
    """
    result = dict(pki)
    spec = pki.get("spec")
    if not isinstance(spec, Mapping):
        return result
    metadata = pki.get("metadata")
    values: dict[str, str] = {}
    if isinstance(metadata, Mapping):
        for key in ("name", "namespace"):
            if isinstance(metadata.get(key), str):
                values[key] = metadata[key]
    if namespace is not None:
        values["namespace"] = namespace
    result["spec"] = _fill(spec, PKI_SCHEMA["properties"]["spec"], values)
    return result


def _fill(
    obj: Mapping[str, Any], schema: Mapping[str, Any], values: dict[str, str]
) -> dict[str, Any]:
    filled = dict(obj)
    for name, sub in schema.get("properties", {}).items():
        if name not in filled:
            default = _default(sub, filled, values)
            if default is not None:
                filled[name] = default
        current = filled.get(name)
        if isinstance(current, str):
            values[name] = current
        elif isinstance(current, list) and current and isinstance(current[0], str):
            values[f"{name}[0]"] = current[0]
        elif isinstance(current, Mapping) and "properties" in sub:
            filled[name] = _fill(current, sub, values)
    for rule in schema.get("allOf", ()):
        if _holds(rule["if"], filled):
            for name, sub in rule["then"].get("properties", {}).items():
                if name not in filled and "default" in sub:
                    filled[name] = _fresh(sub["default"])
    return filled


def _default(sub: Mapping[str, Any], siblings: Mapping[str, Any], values: Mapping[str, str]) -> Any:
    if "default" in sub:
        return _fresh(sub["default"])
    template = sub.get("x-pkiwarden-default")
    if isinstance(template, str):
        return _render(template, values)
    if isinstance(template, list):
        rendered = [_render(item, values) for item in template]
        return None if None in rendered else rendered
    fraction = sub.get("x-pkiwarden-default-fraction")
    if fraction is not None:
        field, divisor = fraction
        return _fraction_of(siblings.get(field), divisor)
    if sub.get("type") == "object" and "properties" in sub:
        return {}
    return None


def _fresh(value: Any) -> Any:
    """A copy of a JSON default, so callers may modify the result (deepcopy is 10x slower)."""
    if isinstance(value, list):
        return [_fresh(item) for item in value]
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    return value


def secret_name(pki: Mapping[str, Any]) -> str | None:
    """The Secret a Pki writes to, defaulted; cheaper than :func:`apply_defaults` for
    checking many Pkis for a clash."""
    spec = pki.get("spec")
    if not isinstance(spec, Mapping):
        return None
    if "secretName" in spec:
        given = spec["secretName"]
        return given if isinstance(given, str) else None
    metadata = pki.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str):
        return None
    return _render(_SECRET_TEMPLATE, {"name": name})


def _render(template: str, values: Mapping[str, str]) -> str | None:
    missing = [key for key in _PLACEHOLDER.findall(template) if key not in values]
    if missing:
        return None
    return _PLACEHOLDER.sub(lambda match: values[match[1]], template)


def _fraction_of(duration: object, divisor: int) -> str | None:
    if not isinstance(duration, str):
        return None
    try:
        whole = parse_duration(duration)
    except DurationError:
        return None
    return format_duration(timedelta(seconds=int(whole.total_seconds() // divisor)))


def _holds(condition: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    """The ``required`` + ``const`` subset of JSON Schema used by the schema's conditionals."""
    if any(name not in obj for name in condition.get("required", ())):
        return False
    for name, sub in condition.get("properties", {}).items():
        if name in obj and "const" in sub and obj[name] != sub["const"]:
            return False
    return True
