"""What one of pkiwarden's Secrets holds, parsed: certificate, key, CA and the issuance record.

The Secret's annotations are the record of what was issued (serial, notAfter,
the hash of the spec it was issued from). They are written in the same request
as the certificate, so a crash between writing the Secret and writing the
Pki's status loses nothing: the next reconcile reads the Secret and sees the
work is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from issuer.runtime import issuance
from shared.certificates import serial_hex

SERIAL_ANNOTATION = "pkiwarden.dev/serial-number"
NOT_AFTER_ANNOTATION = "pkiwarden.dev/not-after"
SPEC_HASH_ANNOTATION = "pkiwarden.dev/spec-hash"


@dataclass(frozen=True)
class StoredCertificate:
    """What one of our Secrets holds, parsed."""

    certificate: x509.Certificate
    key: issuance.PrivateKey
    ca_pem: bytes
    serial_annotation: str
    spec_hash: str

    @property
    def serial(self) -> str:
        return serial_hex(self.certificate.serial_number)


def read_stored(secret: Mapping[str, Any]) -> StoredCertificate | str:
    """The Secret's certificate and key, or a few words on what is wrong with them."""
    data = secret.get("data") or {}
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    try:
        cert_pem = issuance.secret_field(data, "tls.crt")
        key_pem = issuance.secret_field(data, "tls.key")
    except ValueError as error:
        return str(error)
    try:
        certificate = issuance.load_certificates(cert_pem)[0]
    except ValueError:
        return "tls.crt holds no readable certificate"
    try:
        key = issuance.load_key(key_pem)
    except (ValueError, TypeError):
        return "tls.key holds no readable private key"
    try:
        ca_pem = issuance.secret_field(data, "ca.crt")
    except ValueError:
        ca_pem = b""
    return StoredCertificate(
        certificate=certificate,
        key=key,
        ca_pem=ca_pem,
        serial_annotation=str(annotations.get(SERIAL_ANNOTATION, "")),
        spec_hash=str(annotations.get(SPEC_HASH_ANNOTATION, "")),
    )
