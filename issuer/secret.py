"""The kubernetes.io/tls Secret: who owns it, what it holds, and writing it safely.

The Secret's annotations are the record of what was issued (serial, notAfter,
the hash of the spec it was issued from). They are written in the same request
as the certificate, so a crash between writing the Secret and writing the
Pki's status loses nothing: the next reconcile reads the Secret and sees the
work is done.

A Secret is ours only if it carries our labels *and* an ownerReference to this
very Pki (by uid). Anything else with that name belongs to someone else and is
never modified.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from cryptography import x509

from issuer import x509 as pki_x509
from shared import API_GROUP_VERSION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PKI_LABEL
from shared.kube.client import SECRETS, ApiError, Kube

SERIAL_ANNOTATION = "pkiwarden.dev/serial-number"
NOT_AFTER_ANNOTATION = "pkiwarden.dev/not-after"
SPEC_HASH_ANNOTATION = "pkiwarden.dev/spec-hash"
OWNED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"

SecretObject = dict[str, Any]


class Ownership(Enum):
    ABSENT = "absent"
    OURS = "ours"
    FOREIGN = "foreign"


def ownership(secret: Mapping[str, Any] | None, pki: Mapping[str, Any]) -> Ownership:
    if secret is None:
        return Ownership.ABSENT
    metadata = secret.get("metadata") or {}
    labels = metadata.get("labels") or {}
    pki_metadata = pki.get("metadata") or {}
    uid = pki_metadata.get("uid")
    owned = any(
        ref.get("uid") == uid and ref.get("kind") == "Pki"
        for ref in metadata.get("ownerReferences") or []
    )
    labelled = labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE and labels.get(
        PKI_LABEL
    ) == pki_metadata.get("name")
    return Ownership.OURS if owned and labelled and uid else Ownership.FOREIGN


def conflict_message(secret: Mapping[str, Any], secret_name: str, pki_name: str) -> str:
    """Why the Secret is not ours, and the two ways out; names the Pki for readers of a Pod."""
    metadata = secret.get("metadata") or {}
    labels = metadata.get("labels") or {}
    owners = [
        f"{ref.get('kind')} {ref.get('name')}" for ref in metadata.get("ownerReferences") or []
    ]
    if labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE and labels.get(PKI_LABEL):
        whose = f"belongs to Pki {labels.get(PKI_LABEL)}" + (
            f" (owner {', '.join(owners)})" if owners else ""
        )
    elif owners:
        whose = f"is owned by {', '.join(owners)}"
    else:
        whose = "was not created by pkiwarden"
    return (
        f'spec.secretName: "{secret_name}" in Pki {pki_name} is taken:'
        f' Secret "{secret_name}" {whose} and is left'
        " untouched; choose another spec.secretName or delete that Secret"
    )


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class StoredCertificate:
    """What one of our Secrets holds, parsed."""

    certificate: x509.Certificate
    key: pki_x509.PrivateKey
    ca_pem: bytes
    serial_annotation: str
    spec_hash: str

    @property
    def serial(self) -> str:
        return pki_x509.serial_hex(self.certificate)


def read_stored(secret: Mapping[str, Any]) -> StoredCertificate | str:
    """The Secret's certificate and key, or a few words on what is wrong with them."""
    data = secret.get("data") or {}
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    try:
        cert_pem = secret_field(data, "tls.crt")
        key_pem = secret_field(data, "tls.key")
    except ValueError as error:
        return str(error)
    try:
        certificate = pki_x509.load_certificates(cert_pem)[0]
    except ValueError:
        return "tls.crt holds no readable certificate"
    try:
        key = pki_x509.load_key(key_pem)
    except (ValueError, TypeError):
        return "tls.key holds no readable private key"
    try:
        ca_pem = secret_field(data, "ca.crt")
    except ValueError:
        ca_pem = b""
    return StoredCertificate(
        certificate=certificate,
        key=key,
        ca_pem=ca_pem,
        serial_annotation=str(annotations.get(SERIAL_ANNOTATION, "")),
        spec_hash=str(annotations.get(SPEC_HASH_ANNOTATION, "")),
    )


def secret_field(data: Mapping[str, Any], key: str) -> bytes:
    """One base64 field of a Secret's data; ValueError says what is wrong, in words."""
    value = data.get(key)
    if not value:
        raise ValueError(f"{key} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{key} is not base64") from None


# --------------------------------------------------------------------------- rendering


def owner_reference(pki: Mapping[str, Any]) -> dict[str, Any]:
    """controller=true so tools see who manages it; blockOwnerDeletion needs no extra RBAC."""
    metadata = pki.get("metadata") or {}
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": "Pki",
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "controller": True,
        "blockOwnerDeletion": False,
    }


def render_secret(
    pki: Mapping[str, Any],
    secret_name: str,
    *,
    certificate: x509.Certificate,
    key: pki_x509.PrivateKey,
    ca: pki_x509.SigningCA,
    spec_hash: str,
    existing: Mapping[str, Any] | None = None,
) -> SecretObject:
    """The Secret to write; an existing Secret's foreign labels and annotations are kept."""
    pki_metadata = pki.get("metadata") or {}
    old_metadata = (existing or {}).get("metadata") or {}
    labels = dict(old_metadata.get("labels") or {})
    labels.update({MANAGED_BY_LABEL: MANAGED_BY_VALUE, PKI_LABEL: str(pki_metadata.get("name"))})
    annotations = dict(old_metadata.get("annotations") or {})
    annotations.update(
        {
            SERIAL_ANNOTATION: pki_x509.serial_hex(certificate),
            NOT_AFTER_ANNOTATION: f"{certificate.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
            SPEC_HASH_ANNOTATION: spec_hash,
        }
    )
    metadata: dict[str, Any] = {
        "name": secret_name,
        "namespace": pki_metadata.get("namespace"),
        "labels": labels,
        "annotations": annotations,
        "ownerReferences": [owner_reference(pki)],
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
            "tls.key": _b64(pki_x509.key_to_pem(key)),
            "ca.crt": _b64(pki_x509.certificate_to_pem(ca.root)),
        },
    }


def _leaf_then_chain(certificate: x509.Certificate, ca: pki_x509.SigningCA) -> bytes:
    """Leaf, then the signer unless it is the root, then intermediates; never the root."""
    certificates = [certificate]
    for candidate in (ca.certificate, *ca.chain):
        if candidate != ca.root and not pki_x509.is_self_signed(candidate):
            certificates.append(candidate)
    return b"".join(pki_x509.certificate_to_pem(c) for c in certificates)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------- writing


class WriteConflictError(Exception):
    """Someone changed or created the Secret since we read it; reconcile again."""


def write_secret(kube: Kube, body: SecretObject, *, exists: bool) -> SecretObject:
    """Create or replace with optimistic concurrency: never clobber a change we did not see.

    Create fails with 409 if the Secret appeared meanwhile; replace carries the
    resourceVersion we read and fails with 409 if it moved on.
    """
    metadata = body["metadata"]
    try:
        if exists:
            return kube.replace(SECRETS.path(metadata["namespace"], metadata["name"]), body)
        return kube.create(SECRETS.path(metadata["namespace"]), body)
    except ApiError as error:
        if error.conflict:
            raise WriteConflictError(str(error)) from error
        raise


def read_secret(kube: Kube, namespace: str, name: str) -> SecretObject | None:
    """A direct read, for a Secret our label-filtered cache cannot see (someone else's)."""
    try:
        return kube.get(SECRETS.path(namespace, name))
    except ApiError as error:
        if error.not_found:
            return None
        raise
