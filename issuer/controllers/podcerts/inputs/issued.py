"""What an Issued PodCertificateRequest's certificate says: whose, when, signed by which CA."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from issuer.controllers.podcerts.inputs.requests import concluded
from shared.clock import parse_rfc3339


@dataclass(frozen=True, slots=True)
class IssuedPodCertificate:
    pod_uid: str
    issued_at: datetime
    not_after: datetime
    issuer_key_id: bytes | None


def issued_certificate(request: Mapping[str, Any]) -> IssuedPodCertificate | None:
    """The certificate of an Issued request; None for any other or an unreadable chain."""
    if concluded(request) != "Issued":
        return None
    status = request.get("status") or {}
    try:
        leaf = x509.load_pem_x509_certificates(str(status.get("certificateChain")).encode())[0]
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except (ValueError, IndexError, x509.ExtensionNotFound):
        return None
    issued_at = parse_rfc3339(status.get("notBefore")) or leaf.not_valid_before_utc
    pod_uid = str((request.get("spec") or {}).get("podUID") or "")
    return IssuedPodCertificate(pod_uid, issued_at, leaf.not_valid_after_utc, aki.key_identifier)
