from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from shared import API_GROUP_VERSION
from shared.schema import (
    DEFAULT_DNS_PATTERNS,
    DEFAULT_KEY_SIZES,
    KEY_ALGORITHMS,
    KEY_SIZES,
    PKI_POLICY_SCHEMA,
    PKI_SCHEMA,
    ROTATION_POLICIES,
    USAGES,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
SCHEMAS = [PKI_SCHEMA, PKI_POLICY_SCHEMA]


def _fields(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from _fields(sub, f"{path}.{name}")
        if isinstance(sub.get("items"), Mapping):
            yield from _fields(sub["items"], f"{path}.{name}[]")


@pytest.mark.parametrize("schema", SCHEMAS, ids=["Pki", "PkiPolicy"])
def test_schema_is_valid_draft_2020_12(schema: Mapping[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("schema", SCHEMAS, ids=["Pki", "PkiPolicy"])
def test_every_field_has_a_description(schema: Mapping[str, Any]) -> None:
    missing = [path for path, sub in _fields(schema) if not sub.get("description")]
    assert missing == []


def test_vocabularies_match_the_design() -> None:
    assert KEY_ALGORITHMS == ("ECDSA", "RSA", "Ed25519")
    assert KEY_SIZES == {"RSA": (2048, 3072, 4096), "ECDSA": (256, 384), "Ed25519": ()}
    assert DEFAULT_KEY_SIZES == {"RSA": 2048, "ECDSA": 256}
    assert ROTATION_POLICIES == ("Always", "Never")
    assert {"server auth", "client auth", "digital signature", "key encipherment"} <= set(USAGES)
    assert DEFAULT_DNS_PATTERNS == (
        "{serviceName}.{namespace}.svc",
        "{serviceName}.{namespace}.svc.cluster.local",
    )


def test_status_describes_what_the_issuer_writes() -> None:
    status = PKI_SCHEMA["properties"]["status"]["properties"]
    assert set(status) == {
        "conditions",
        "notBefore",
        "notAfter",
        "renewalTime",
        "serialNumber",
        "secretName",
        "lastFailureTime",
        "failedIssuanceAttempts",
        "nextRetryTime",
        "observedGeneration",
    }


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ({"algorithm": "RSA", "size": 3072}, True),
        ({"algorithm": "ECDSA", "size": 384}, True),
        ({"algorithm": "Ed25519"}, True),
        ({"algorithm": "RSA", "size": 256}, False),
        ({"algorithm": "ECDSA", "size": 2048}, False),
        ({"algorithm": "Ed25519", "size": 256}, False),
    ],
)
def test_key_size_conditionals_hold_in_json_schema(key: dict[str, Any], valid: bool) -> None:
    pki = {"spec": {"serviceName": "app1", "privateKey": key}}
    errors = list(jsonschema.Draft202012Validator(PKI_SCHEMA).iter_errors(pki))
    assert (errors == []) is valid


def test_examples_conform_to_the_schema() -> None:
    by_kind = {"Pki": PKI_SCHEMA, "PkiPolicy": PKI_POLICY_SCHEMA}
    seen = 0
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document.get("apiVersion") == API_GROUP_VERSION:
                jsonschema.validate(document, by_kind[document["kind"]])
                seen += 1
    assert seen == 3
