"""Defaults: the Pki with the API's documented defaults filled in, all read from the schema.

Stored objects keep only what the user wrote (the CRD carries no defaults), so
the issuer and ``lint`` call this to see what will actually be issued, and a
default can change in one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any, cast

from shared.durations import DurationError, format_duration, parse_duration
from shared.schema import PKI_SCHEMA
from shared.shapes import is_mapping

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
    if not is_mapping(spec):
        return result
    metadata = pki.get("metadata")
    values: dict[str, str] = {}
    if is_mapping(metadata):
        for key in ("name", "namespace"):
            if isinstance(metadata.get(key), str):
                values[key] = metadata[key]
    if namespace is not None:
        values["namespace"] = namespace
    result["spec"] = _fill(spec, _SPEC_PLAN, values)
    return result


# A field's default from its filled siblings and the values named so far.
_Maker = Callable[[Mapping[str, Any], Mapping[str, str]], Any]


@dataclass(frozen=True)
class _Field:
    name: str
    first: str  # the name its first entry goes by in a template: ``dnsNames[0]``
    default: _Maker | None
    nested: _Plan | None


@dataclass(frozen=True)
class _Plan:
    """What filling one object takes, read from its schema once rather than per call
    (defaults are applied on every admission review)."""

    fields: tuple[_Field, ...]
    # ``allOf``: (the ``if``, the ``then`` defaults) of each rule that sets any.
    conditional: tuple[tuple[Mapping[str, Any], tuple[tuple[str, Any], ...]], ...]

    @classmethod
    def of(cls, schema: Mapping[str, Any]) -> _Plan:
        fields = tuple(
            _Field(
                name,
                f"{name}[0]",
                _maker(sub),
                cls.of(sub) if "properties" in sub else None,
            )
            for name, sub in schema.get("properties", {}).items()
        )
        conditional = []
        for rule in schema.get("allOf", ()):
            then = rule["then"].get("properties", {})
            defaults = tuple(
                (name, sub["default"]) for name, sub in then.items() if "default" in sub
            )
            if defaults:
                conditional.append((rule["if"], defaults))
        return cls(fields, tuple(conditional))


def _fill(obj: Mapping[str, Any], plan: _Plan, values: dict[str, str]) -> dict[str, Any]:
    filled = dict(obj)
    for field in plan.fields:
        name = field.name
        if name not in filled and field.default is not None:
            default = field.default(filled, values)
            if default is not None:
                filled[name] = default
        current = filled.get(name)
        if isinstance(current, str):
            values[name] = current
        elif isinstance(current, list) and current and isinstance(current[0], str):
            values[field.first] = current[0]
        elif field.nested is not None and is_mapping(current):
            filled[name] = _fill(current, field.nested, values)
    for condition, defaults in plan.conditional:
        if _holds(condition, filled):
            for name, value in defaults:
                if name not in filled:
                    filled[name] = _fresh(value)
    return filled


def _maker(sub: Mapping[str, Any]) -> _Maker | None:
    """How the schema node ``sub`` says its default is made, if it has one."""
    if "default" in sub:
        value = sub["default"]
        return lambda siblings, values: _fresh(value)
    template = sub.get("x-pkiwarden-default")
    if isinstance(template, str):
        return lambda siblings, values: _render(template, values)
    if isinstance(template, list):
        templates = tuple(template)

        def listed(siblings: Mapping[str, Any], values: Mapping[str, str]) -> list[str] | None:
            rendered = [_render(item, values) for item in templates]
            return None if None in rendered else cast(list[str], rendered)

        return listed
    by = sub.get("x-pkiwarden-default-by")
    if by is not None:
        field, choices = by

        def chosen(siblings: Mapping[str, Any], values: Mapping[str, str]) -> Any:
            key = values.get(field)
            choice = choices.get(key) if isinstance(key, str) else None
            return None if choice is None else _fresh(choice)

        return chosen
    fraction = sub.get("x-pkiwarden-default-fraction")
    if fraction is not None:
        field, divisor = fraction
        return lambda siblings, values: _fraction_of(siblings.get(field), divisor)
    if sub.get("type") == "object" and "properties" in sub:
        return lambda siblings, values: {}
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
    if not is_mapping(spec):
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
    """``template`` with its ``{placeholders}`` filled in; None if one has no value."""
    out = []
    for text, is_placeholder in _parts(template):
        if is_placeholder:
            value = values.get(text)
            if value is None:
                return None
            out.append(value)
        else:
            out.append(text)
    return "".join(out)


@lru_cache(maxsize=64)
def _parts(template: str) -> tuple[tuple[str, bool], ...]:
    """``{name}-tls`` -> (("name", True), ("-tls", False)): parsed once per template."""
    parts: list[tuple[str, bool]] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > position:
            parts.append((template[position : match.start()], False))
        parts.append((match[1], True))
        position = match.end()
    if position < len(template):
        parts.append((template[position:], False))
    return tuple(parts)


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


_SPEC_PLAN = _Plan.of(PKI_SCHEMA["properties"]["spec"])
