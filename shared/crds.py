"""CustomResourceDefinitions rendered from the schema: ``python -m shared.crds DIR``.

The CRD is the schema minus what the API server must not see or would do
differently:

- no ``default``: stored objects keep what the user wrote and defaults are
  applied in one place (``shared.defaults``); the default goes into the
  description for ``kubectl explain`` instead;
- no conditionals, ``additionalProperties: false`` or ``x-pkiwarden-*``
  annotations (not structural); per-algorithm key sizes become one enum;
- no regex ``pattern``: name syntax is checked by the validation module, which
  can say what is wrong in words.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from shared import API_GROUP, API_VERSION
from shared.authority_schema import AUTHORITY_COLUMNS, PKI_AUTHORITY_SCHEMA
from shared.schema import JSON, KEY_SIZES, PKI_POLICY_SCHEMA, PKI_SCHEMA

_KEPT = (
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "additionalProperties",
)

PKI_COLUMNS: list[JSON] = [
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Secret", "type": "string", "jsonPath": ".status.secretName"},
    {"name": "Service", "type": "string", "jsonPath": ".spec.serviceName"},
    # "string", not "date": kubectl renders a future date column as <invalid>.
    {"name": "Expires", "type": "string", "jsonPath": ".status.notAfter"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
POLICY_COLUMNS: list[JSON] = [
    {"name": "Namespaces", "type": "string", "jsonPath": ".spec.namespaces"},
    {"name": "Services", "type": "string", "jsonPath": ".spec.allowedServiceNames"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
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


def default_text(schema: Mapping[str, Any]) -> str:
    """The default in words, since the CRD itself carries no ``default``."""
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
            node[key] = value + default_text(schema)
        else:
            node[key] = value
    if "allOf" in schema and "size" in node.get("properties", {}):
        sizes = sorted({size for sizes in KEY_SIZES.values() for size in sizes})
        node["properties"]["size"]["enum"] = sizes
    return node


def _top_level(schema: Mapping[str, Any]) -> JSON:
    root = structural(schema)
    properties = root["properties"]
    properties["apiVersion"] = {
        "type": "string",
        "description": properties["apiVersion"]["description"],
    }
    properties["kind"] = {"type": "string", "description": properties["kind"]["description"]}
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
        print("usage: python -m shared.crds DIR", file=sys.stderr)
        return 2
    directory = Path(args[0])
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered_files().items():
        (directory / name).write_text(text, encoding="utf-8")
        print(f"wrote {directory / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["main", "render_crd", "rendered_files", "structural"]
