"""PkiAuthority: the CRD rendering and the validation table, and the webhook's verdict."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from pkiwarden.generate.crds import rendered_files
from shared.findings import phrase
from shared.validation.pki_authority import validate_authority
from webhook.decision import decide


def _authority(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiAuthority",
        "metadata": {"name": "default"},
        "spec": {"secretName": "pkiwarden-ca", **spec},
    }


def test_crd_is_cluster_scoped_with_status_and_the_rotation_columns() -> None:
    crd = yaml.safe_load(rendered_files()["pkiauthorities.yaml"])
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "pkiauthorities.pkiwarden.dev"
    assert (spec["scope"], spec["names"]["shortNames"]) == ("Cluster", ["pkica"])
    (version,) = spec["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Ready", "Phase", "Active CA expires", "Pending", "Age"]
    properties = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert "Default: 1h." in properties["rotation"]["properties"]["trustPropagation"]["description"]
    assert "default" not in properties["rotation"]["properties"]["reissueRate"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, []),
        (
            {"generate": {"duration": "8760h", "renewBefore": "2160h"}, "nextSecretName": "ca-2"},
            [],
        ),
        ({"rotation": {"trustPropagation": "30s", "reissueRate": 50}}, []),
        (
            {"secretName": "Pkiwarden_CA"},
            ['spec.secretName: "Pkiwarden_CA" has an illegal character "P"'],
        ),
        (
            {"nextSecretName": "pkiwarden-ca"},
            ['spec.nextSecretName: "pkiwarden-ca" is the active CA\'s Secret'],
        ),
        (
            {"generate": {"duration": "10 days"}},
            ['spec.generate.duration: "10 days" is not a duration'],
        ),
        (
            {"generate": {"duration": "30m"}},
            ['spec.generate.duration: "30m" is shorter than the minimum for a CA, 1h'],
        ),
        (
            {"generate": {"duration": "24h", "renewBefore": "24h"}},
            [
                'spec.generate.renewBefore: "24h" must be shorter than'
                ' spec.generate.duration (24h); try "8h"'
            ],
        ),
        (
            {"generate": {"privateKey": {"algorithm": "RSA", "size": 1024}}},
            ["spec.generate.privateKey.size: 1024 is not a size for RSA keys"],
        ),
        (
            {"generate": {"privateKey": {"algorithm": "ECDSA", "size": 2048}}},
            ["spec.generate.privateKey.size: 2048 is not a size for ECDSA keys"],
        ),
        (
            {"rotation": {"trustPropagation": "soon", "reissueRate": 0}},
            [
                'spec.rotation.trustPropagation: "soon" is not a duration',
                "spec.rotation.reissueRate: 0 is out of range (1 to 10000)",
            ],
        ),
        (
            {"rotation": {"reissueRate": "fast"}},
            ['spec.rotation.reissueRate: "fast" must be'],
        ),
        ({"generat": {}}, ['spec.generat: is not a known field; did you mean "generate"?']),
    ],
)
def test_validation_table(spec: dict[str, Any], expected: list[str]) -> None:
    lines = [phrase(finding) for finding in validate_authority(_authority(**spec))]
    assert len(lines) == len(expected), lines
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), line


def test_missing_secret_name_and_not_an_object() -> None:
    found = validate_authority({"spec": {}})
    assert [phrase(f) for f in found] == ["spec.secretName: is required"]
    assert validate_authority("x")[0].path == "object"


def _review(obj: Any, operation: str = "CREATE") -> Any:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u1",
            "kind": {"group": "pkiwarden.dev", "version": "v1alpha1", "kind": "PkiAuthority"},
            "operation": operation,
            "object": obj,
        },
    }


def test_webhook_denies_a_bad_authority_with_every_error_and_allows_a_good_one() -> None:
    bad = _authority(nextSecretName="pkiwarden-ca", rotation={"trustPropagation": "soon"})
    response = decide(_review(bad), None)["response"]
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "spec.nextSecretName" in message
    assert "spec.rotation.trustPropagation" in message
    assert decide(_review(_authority()), None)["response"]["allowed"] is True
