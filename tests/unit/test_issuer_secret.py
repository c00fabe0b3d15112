"""The Secret: ownership decides whether we may touch it; rendering puts every piece in place."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from issuer.controllers.pkis.inputs.stored import (
    NOT_AFTER_ANNOTATION,
    SERIAL_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    StoredCertificate,
    read_stored,
)
from issuer.runtime import issuance
from issuer.runtime.ownership import Ownership, ownership
from shared.certificates import serial_hex
from tests.unit.builders import NOW, data_of, issued_secret, make_ca, make_pki

CA = make_ca()
PKI = make_pki()
SECRET = issued_secret(PKI, CA)
# What an earlier release put on every issued Secret.
OWNER = {
    "apiVersion": "pkiwarden.dev/v1alpha1",
    "kind": "Pki",
    "name": PKI["metadata"]["name"],
    "uid": PKI["metadata"]["uid"],
    "controller": True,
    "blockOwnerDeletion": False,
}
LABELS = SECRET["metadata"]["labels"]


def _meta(labels: dict[str, str] | None, owners: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "app1-pki-tls",
            "labels": labels or {},
            "ownerReferences": owners or [],
        }
    }


OWNERSHIP = [
    ("absent", None, Ownership.ABSENT),
    ("ours: our labels for this Pki", _meta(LABELS, None), Ownership.OURS),
    ("an earlier release's ownerReference to this Pki", _meta(LABELS, [OWNER]), Ownership.OURS),
    ("no labels", _meta(None, [OWNER]), Ownership.FOREIGN),
    ("no labels, no ownerReference", _meta(None, None), Ownership.FOREIGN),
    # A Pki deleted and created again (a reinstall): its Secret is adopted.
    ("owner uid of an older Pki", _meta(LABELS, [{**OWNER, "uid": "old"}]), Ownership.OURS),
    (
        "an older Pki and something else own it",
        _meta(LABELS, [{**OWNER, "uid": "old"}, {**OWNER, "kind": "Deployment"}]),
        Ownership.FOREIGN,
    ),
    (
        "an older Pki's Secret labelled for another Pki",
        _meta({**LABELS, "pkiwarden.dev/pki": "x"}, [{**OWNER, "uid": "old"}]),
        Ownership.FOREIGN,
    ),
    (
        "labelled for another Pki",
        _meta({**LABELS, "pkiwarden.dev/pki": "x"}, [OWNER]),
        Ownership.FOREIGN,
    ),
    (
        "managed by someone else",
        _meta({**LABELS, "app.kubernetes.io/managed-by": "helm"}, [OWNER]),
        Ownership.FOREIGN,
    ),
    ("owned by a Deployment", _meta(LABELS, [{**OWNER, "kind": "Deployment"}]), Ownership.FOREIGN),
]


@pytest.mark.parametrize(
    ("secret", "expected"), [c[1:] for c in OWNERSHIP], ids=[c[0] for c in OWNERSHIP]
)
def test_ownership(secret: dict[str, Any] | None, expected: Ownership) -> None:
    assert ownership(secret, PKI) is expected


def test_rendered_secret_has_everything_in_place() -> None:
    metadata = SECRET["metadata"]
    assert SECRET["type"] == "kubernetes.io/tls"
    assert metadata["name"] == "app1-pki-tls" and metadata["namespace"] == "app1"
    assert metadata["labels"] == {
        "app.kubernetes.io/managed-by": "pkiwarden",
        "pkiwarden.dev/pki": "app1-pki",
    }
    # No ownerReference: the garbage collector would delete it on a reinstall.
    assert "ownerReferences" not in metadata
    chain = issuance.load_certificates(data_of(SECRET, "tls.crt"))
    assert len(chain) == 1  # the leaf; the self-signed root is not in tls.crt
    assert issuance.load_certificates(data_of(SECRET, "ca.crt")) == [CA.root]
    assert data_of(SECRET, "tls.key").startswith(b"-----BEGIN PRIVATE KEY-----")
    annotations = metadata["annotations"]
    assert annotations[SERIAL_ANNOTATION] == serial_hex(chain[0].serial_number)
    assert annotations[NOT_AFTER_ANNOTATION] == f"{chain[0].not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    assert len(annotations[SPEC_HASH_ANNOTATION]) == 32
    assert b"PRIVATE" not in data_of(SECRET, "ca.crt") + data_of(SECRET, "tls.crt")


def test_intermediate_signer_goes_into_the_chain_root_into_ca_crt() -> None:
    root = CA
    inter_key = issuance.generate_key(issuance.KeySpec(issuance.KeyAlgorithm.ECDSA, 256))
    inter_cert, _ = issuance.self_signed_ca(
        "intermediate", NOW, CA.certificate.not_valid_after_utc - NOW
    )
    # Re-sign the intermediate's subject and key under the root.
    from cryptography import x509  # noqa: PLC0415

    builder = (
        x509.CertificateBuilder()
        .subject_name(inter_cert.subject)
        .issuer_name(root.certificate.subject)
        .public_key(inter_key.public_key())
        .serial_number(7)
        .not_valid_before(inter_cert.not_valid_before_utc)
        .not_valid_after(inter_cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    )
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415

    intermediate = builder.sign(root.key, hashes.SHA256())
    signer = issuance.SigningCA(intermediate, inter_key, (), root.certificate)
    secret = issued_secret(PKI, signer)
    chain = issuance.load_certificates(data_of(secret, "tls.crt"))
    assert chain[1:] == [intermediate]
    assert issuance.load_certificates(data_of(secret, "ca.crt")) == [root.certificate]


def test_foreign_labels_and_annotations_survive_a_rewrite() -> None:
    from issuer.controllers.pkis.decisions.secret_body import secret_body  # noqa: PLC0415
    from issuer.controllers.pkis.decisions.verdict import desired_of  # noqa: PLC0415
    from shared.defaults import apply_defaults  # noqa: PLC0415

    existing = copy.deepcopy(SECRET)
    existing["metadata"]["labels"]["team"] = "payments"
    existing["metadata"]["annotations"]["reloader"] = "true"
    existing["metadata"]["resourceVersion"] = "42"
    desired = desired_of(apply_defaults(PKI))
    key = issuance.generate_key(desired.key)
    issued = issuance.issue_leaf(desired.request, key, CA, NOW)
    body = secret_body(PKI, desired, issued, key, CA, existing=existing)
    assert body["metadata"]["labels"]["team"] == "payments"
    assert body["metadata"]["annotations"]["reloader"] == "true"
    assert body["metadata"]["resourceVersion"] == "42"  # optimistic concurrency on replace


def test_a_rewrite_drops_an_earlier_releases_owner_reference() -> None:
    from issuer.controllers.pkis.decisions.secret_body import secret_body  # noqa: PLC0415
    from issuer.controllers.pkis.decisions.verdict import desired_of  # noqa: PLC0415
    from issuer.runtime.ownership import legacy_owner_references  # noqa: PLC0415
    from shared.defaults import apply_defaults  # noqa: PLC0415

    existing = copy.deepcopy(SECRET)
    existing["metadata"]["ownerReferences"] = [OWNER]
    assert legacy_owner_references(existing)
    desired = desired_of(apply_defaults(PKI))
    key = issuance.generate_key(desired.key)
    issued = issuance.issue_leaf(desired.request, key, CA, NOW)
    body = secret_body(PKI, desired, issued, key, CA, existing=existing)
    assert not legacy_owner_references(body)


def test_read_stored_gives_words_for_broken_data() -> None:
    stored = read_stored(SECRET)
    assert isinstance(stored, StoredCertificate)
    assert stored.facts.serial_recorded
    assert read_stored({"data": {}}) == "tls.crt is missing"
    assert read_stored({"data": {"tls.crt": "!!", "tls.key": "x"}}) == "tls.crt is not base64"
