"""The Secret to write for an issued certificate, as a value: no I/O, no clock."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from cryptography import x509

from issuer.controllers.pkis.decisions.verdict import Desired
from issuer.controllers.pkis.inputs.stored import (
    NOT_AFTER_ANNOTATION,
    SERIAL_ANNOTATION,
    SPEC_HASH_ANNOTATION,
)
from issuer.runtime import issuance
from shared import MANAGED_BY_LABEL, MANAGED_BY_VALUE, PKI_LABEL
from shared.certificates import serial_hex
from shared.clock import rfc3339

SecretObject = dict[str, Any]


def secret_body(
    pki: Mapping[str, Any],
    desired: Desired,
    issued: issuance.IssuedCertificate,
    key: issuance.PrivateKey,
    ca: issuance.SigningCA,
    *,
    existing: Mapping[str, Any] | None = None,
) -> SecretObject:
    """The Secret to write; an existing Secret's foreign labels and annotations are kept.

    No ownerReference: the labels say whose it is (see ``issuer.runtime.ownership``),
    so an uninstall and reinstall keeps it; the issuer deletes it with its Pki.
    """
    certificate = issued.certificate
    pki_metadata = pki.get("metadata") or {}
    old_metadata = (existing or {}).get("metadata") or {}
    labels = dict(old_metadata.get("labels") or {})
    labels.update({MANAGED_BY_LABEL: MANAGED_BY_VALUE, PKI_LABEL: str(pki_metadata.get("name"))})
    annotations = dict(old_metadata.get("annotations") or {})
    annotations.update(
        {
            SERIAL_ANNOTATION: serial_hex(certificate.serial_number),
            NOT_AFTER_ANNOTATION: rfc3339(certificate.not_valid_after_utc),
            SPEC_HASH_ANNOTATION: desired.spec_hash,
        }
    )
    metadata: dict[str, Any] = {
        "name": desired.secret_name,
        "namespace": pki_metadata.get("namespace"),
        "labels": labels,
        "annotations": annotations,
    }
    if existing is not None:
        metadata["resourceVersion"] = old_metadata.get("resourceVersion")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": metadata,
        "data": {
            "tls.crt": _b64(_leaf_then_chain(certificate, ca)),
            "tls.key": _b64(issuance.key_to_pem(key)),
            "ca.crt": _b64(ca.trust or issuance.certificate_to_pem(ca.root)),
        },
    }


def _leaf_then_chain(certificate: x509.Certificate, ca: issuance.SigningCA) -> bytes:
    """Leaf, then the signer unless it is the root, then intermediates; never the root."""
    certificates = [certificate]
    for candidate in (ca.certificate, *ca.chain):
        if candidate != ca.root and not issuance.is_self_signed(candidate):
            certificates.append(candidate)
    return b"".join(issuance.certificate_to_pem(c) for c in certificates)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
