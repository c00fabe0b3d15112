"""Structural checks (types, required, enums, lengths) from the schema, in words.

This walks the subset of JSON Schema the pkiwarden schemas use instead of
running a general validator: it is several times faster on the admission path,
it stops at the first wrong type of a field instead of piling up follow-on
errors, and every message is written here rather than translated from a
library's. Conditionals (``allOf``/``if``) are left to the semantic rules,
which can name the algorithm a key size belongs to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

from shared.findings import Category, Finding, Severity
from shared.shapes import is_mapping
from shared.suggest import did_you_mean

_TYPE_WORDS = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_TOKEN = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


@lru_cache(maxsize=4096)
def child_path(path: str, key: object) -> str:
    """``spec`` + ``dnsNames`` -> ``spec.dnsNames``; odd keys are quoted to stay one line."""
    name = key if isinstance(key, str) else str(key)
    if _IDENTIFIER.fullmatch(name):
        return f"{path}.{name}" if path else name
    return f"{path}[{json.dumps(name, ensure_ascii=True)}]"


def _has_type(value: object, kind: str) -> bool:
    if kind == "object":
        return is_mapping(value)
    if kind == "array":
        return isinstance(value, list | tuple)
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "boolean":
        return isinstance(value, bool)
    return True


def _error(path: str, problem: str, value: object = None) -> Finding:
    return Finding(Severity.ERROR, Category.INVALID_SPEC, path, problem, value)


def _enum_list(values: Sequence[object]) -> str:
    return ", ".join(v if isinstance(v, str) else json.dumps(v) for v in values)


def check_structure(value: object, schema: Mapping[str, Any], path: str = "") -> list[Finding]:
    """Every structural problem of ``value`` against ``schema``, in document order."""
    return list(_walk(value, schema, path))


def _walk(
    value: object, schema: Mapping[str, Any], path: str, required: bool = False
) -> Iterator[Finding]:
    kind = schema.get("type")
    if isinstance(kind, str) and not _has_type(value, kind):
        shown = value if isinstance(value, str | int | float | bool) else None
        yield _error(path, f"must be {_TYPE_WORDS.get(kind, kind)}", shown)
        return
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        problem = f"is not one of the allowed values ({_enum_list(enum)})"
        yield _error(path, problem + did_you_mean(value, [str(v) for v in enum]), value)
        return
    if isinstance(value, str):
        yield from _string_length(value, schema, path)
    elif isinstance(value, list | tuple):
        yield from _array(value, schema, path, required)
    elif is_mapping(value):
        yield from _object(value, schema, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            yield _error(path, f"is out of range ({low} to {high})", value)


def _string_length(value: str, schema: Mapping[str, Any], path: str) -> Iterator[Finding]:
    low, high = schema.get("minLength"), schema.get("maxLength")
    if low is not None and len(value) < low:
        yield _error(path, "must not be empty" if low == 1 else f"is shorter than {low}", value)
    elif high is not None and len(value) > high:
        yield _error(path, f"is {len(value)} characters long; at most {high} are allowed", value)


def _empty_list_problem(schema: Mapping[str, Any], required: bool) -> str:
    """An empty list never means "nothing" here: say what to write instead."""
    if required:
        return "must not be an empty list; list at least one entry"
    if any(key in schema for key in ("default", "x-pkiwarden-default", "x-pkiwarden-default-by")):
        return "must not be an empty list; leave the field out for the default"
    return "must not be an empty list; leave the field out instead"


def _array(
    value: Sequence[object], schema: Mapping[str, Any], path: str, required: bool
) -> Iterator[Finding]:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if low is not None and len(value) < low:
        yield _error(path, _empty_list_problem(schema, required))
    elif high is not None and len(value) > high:
        yield _error(path, f"has {len(value)} entries; at most {high} are allowed")
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            yield from _walk(item, items, f"{path}[{index}]")


def _object(value: Mapping[Any, Any], schema: Mapping[str, Any], path: str) -> Iterator[Finding]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            yield _error(child_path(path, name), "is required")
    required = schema.get("required", ())
    for name, subschema in properties.items():
        if name in value:
            yield from _walk(value[name], subschema, child_path(path, name), name in required)
    extra = schema.get("additionalProperties")
    if extra is None:
        return
    for key in value:
        if key in properties:
            continue
        if extra is False:
            hint = did_you_mean(key, properties) or f"; known fields: {', '.join(properties)}"
            yield _error(child_path(path, key), "is not a known field" + hint)
        elif isinstance(extra, Mapping):
            yield from _walk(value[key], extra, child_path(path, key))


def field_order_key(path: str, schema: Mapping[str, Any]) -> tuple[tuple[int, int, str], ...]:
    """Sort key placing a path where its field sits in the schema (``spec.dnsNames[1]``)."""
    key: list[tuple[int, int, str]] = []
    node: Mapping[str, Any] | None = schema
    for match in _TOKEN.finditer(path):
        name, index, quoted = match.groups()
        if index is not None:
            key.append((0, int(index), ""))
            items = node.get("items") if node else None
            node = items if isinstance(items, Mapping) else None
            continue
        field = name if name is not None else quoted
        properties = node.get("properties", {}) if node else {}
        if field in properties:
            key.append((list(properties).index(field), 0, ""))
            node = properties[field]
        else:
            key.append((len(properties), 0, field))
            node = None
    return tuple(key)
