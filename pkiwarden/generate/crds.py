"""CustomResourceDefinitions rendered from the schema: ``python -m pkiwarden.generate.crds DIR``.

The CRD is the schema minus what the API server must not see or would do
differently:

- no ``default``: stored objects keep what the user wrote and defaults are
  applied in one place (``shared.defaults``); the default goes into the
  description for ``kubectl explain`` instead;
- no conditionals, ``additionalProperties: false`` or ``x-pkiwarden-*``
  annotations (not structural);
- no value rules: no ``enum``, ``minimum``/``maximum``, ``minLength``,
  ``minItems`` or regex ``pattern``. The API server checks the CRD schema
  before any webhook, so a value rule there answers with a generic
  ``Unsupported value`` (no field context, no "did you mean") and hides every
  other finding in the object. The validation module checks them all and says
  what is wrong in words; the allowed values go into the description, which
  ``kubectl explain`` shows. Types, required fields, known fields and the upper
  length and item limits stay: they only make the object well-formed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from shared import API_GROUP, API_VERSION
from shared.authority_schema import PKI_AUTHORITY_SCHEMA
from shared.schema import JSON, PKI_POLICY_SCHEMA, PKI_SCHEMA

_KEPT = (
    "type",
    "description",
    "properties",
    "required",
    "items",
    "format",
    "maxLength",
    "maxItems",
    "additionalProperties",
)

# Every kind with a status leads with it: whether the object does its job.
READY_COLUMN: JSON = {
    "name": "Ready",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
}
AGE_COLUMN: JSON = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

PKI_COLUMNS: list[JSON] = [
    READY_COLUMN,
    {"name": "Secret", "type": "string", "jsonPath": ".status.secretName"},
    {"name": "Service", "type": "string", "jsonPath": ".spec.serviceName"},
    # "string", not "date": kubectl renders a future date column as <invalid>.
    {"name": "Expires", "type": "string", "jsonPath": ".status.notAfter"},
    AGE_COLUMN,
    # -o wide: why a Pki is not Ready, without a describe.
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {
        "name": "Message",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
    },
]
# JSONPath in a CRD column cannot join a list: the API server prints it as compact JSON
# (["app1","app2"]), which at least keeps names with odd characters unambiguous. A
# policy that selects by label shows its labels; -o wide adds what it allows.
POLICY_COLUMNS: list[JSON] = [
    {"name": "Namespaces", "type": "string", "jsonPath": ".spec.namespaces"},
    {"name": "Selector", "type": "string", "jsonPath": ".spec.namespaceSelector.matchLabels"},
    {"name": "Services", "type": "string", "jsonPath": ".spec.allowedServiceNames"},
    AGE_COLUMN,
    {"name": "DNS Names", "type": "string", "priority": 1, "jsonPath": ".spec.allowedDNSNames"},
    {"name": "IP Ranges", "type": "string", "priority": 1, "jsonPath": ".spec.allowedIPRanges"},
    {"name": "Max Duration", "type": "string", "priority": 1, "jsonPath": ".spec.maxDuration"},
]

AUTHORITY_COLUMNS: list[JSON] = [
    # Ready first, as for a Pki: whether the CA can sign is the question asked most.
    READY_COLUMN,
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    # "string", not "date": kubectl renders a future date column as <invalid>.
    {"name": "Active CA expires", "type": "string", "jsonPath": ".status.activeNotAfter"},
    {"name": "Pending", "type": "integer", "jsonPath": ".status.pendingPkis"},
    AGE_COLUMN,
]


_READABLE = {
    "{name}": "<metadata.name>",
    "{namespace}": "<namespace>",
    "{serviceName}": "<serviceName>",
    "{dnsNames[0]}": "the first DNS name",
}


def _readable(template: object) -> str:
    text = str(template)
    for placeholder, words in _READABLE.items():
        text = text.replace(placeholder, words)
    return text


def _default_by_text(field: str, choices: Mapping[str, Sequence[str]]) -> str:
    """``Default for ECDSA and Ed25519 keys: a, b; for RSA keys: a, b, c.``"""
    groups: dict[tuple[str, ...], list[str]] = {}
    for value, default in choices.items():
        groups.setdefault(tuple(default), []).append(value)
    parts = [
        f"for {' and '.join(values)} {'keys' if field == 'algorithm' else field}: "
        + ", ".join(default)
        for default, values in groups.items()
    ]
    return " Default " + "; ".join(parts) + "."


def allowed_text(schema: Mapping[str, Any]) -> str:
    """The allowed values in words (of the field, or of a list's items): the CRD has no enum."""
    items = schema.get("items")
    enum = schema.get("enum") or (items.get("enum") if isinstance(items, Mapping) else None)
    return f" Allowed: {', '.join(map(str, enum))}." if enum else ""


def default_text(schema: Mapping[str, Any]) -> str:
    """The default in words, since the CRD itself carries no ``default``."""
    if "x-pkiwarden-default-by" in schema:
        field, choices = schema["x-pkiwarden-default-by"]
        return _default_by_text(field, choices)
    if "x-pkiwarden-default-fraction" in schema:
        field, divisor = schema["x-pkiwarden-default-fraction"]
        return f" Default: {field} / {divisor}."
    default = schema.get("default", schema.get("x-pkiwarden-default"))
    if default is None or schema.get("type") == "object":
        return ""
    if isinstance(default, list):
        return " Default: " + ", ".join(_readable(item) for item in default) + "."
    return f" Default: {_readable(default)}."


def structural(schema: Mapping[str, Any]) -> JSON:
    """The CRD form of one schema node (recursively)."""
    node: JSON = {}
    for key in _KEPT:
        if key not in schema:
            continue
        value = schema[key]
        if key == "properties":
            node[key] = {name: structural(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            if isinstance(value, Mapping):
                node[key] = structural(value)
        elif key == "description":
            node[key] = value + allowed_text(schema) + default_text(schema)
        else:
            node[key] = value
    return node


def _top_level(schema: Mapping[str, Any]) -> JSON:
    root = structural(schema)
    properties = root["properties"]
    given = schema["properties"]
    properties["apiVersion"] = {"type": "string", "description": given["apiVersion"]["description"]}
    properties["kind"] = {"type": "string", "description": given["kind"]["description"]}
    properties["metadata"] = {"type": "object"}
    conditions = properties.get("status", {}).get("properties", {}).get("conditions")
    if conditions is not None:
        conditions["x-kubernetes-list-type"] = "map"
        conditions["x-kubernetes-list-map-keys"] = ["type"]
    return root


def render_crd(
    schema: Mapping[str, Any],
    plural: str,
    short_name: str,
    scope: str,
    columns: Sequence[JSON],
) -> JSON:
    """A complete apiextensions.k8s.io/v1 CRD for one kind."""
    kind = schema["title"]
    version: JSON = {
        "name": API_VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": _top_level(schema)},
        "additionalPrinterColumns": list(columns),
    }
    if "status" in schema["properties"]:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short_name],
            },
            "scope": scope,
            "versions": [version],
        },
    }


def rendered_files() -> dict[str, str]:
    """File name -> YAML text, exactly as written to ``deploy/crds``."""
    crds = {
        "pkis.yaml": render_crd(PKI_SCHEMA, "pkis", "pki", "Namespaced", PKI_COLUMNS),
        "pkipolicies.yaml": render_crd(
            PKI_POLICY_SCHEMA, "pkipolicies", "pkipol", "Cluster", POLICY_COLUMNS
        ),
        # The CA as a resource (see shared/authority_schema.py).
        "pkiauthorities.yaml": render_crd(
            PKI_AUTHORITY_SCHEMA, "pkiauthorities", "pkica", "Cluster", AUTHORITY_COLUMNS
        ),
    }
    header = "# Generated from shared/schema.py by `make crds`; do not edit.\n"
    return {
        name: header + yaml.safe_dump(crd, sort_keys=False, width=100, allow_unicode=False)
        for name, crd in crds.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m pkiwarden.generate.crds DIR", file=sys.stderr)
        return 2
    directory = Path(args[0])
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered_files().items():
        (directory / name).write_text(text, encoding="utf-8")
        print(f"wrote {directory / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["allowed_text", "default_text", "main", "render_crd", "rendered_files", "structural"]
