"""Which Pod certificates still depend on a CA other than the active one.

A CA rotation keeps the previous CA trusted until nothing valid that it
signed remains (DESIGN.md, "Rotation"). A Pod certificate cannot be re-issued
by pkiwarden (the kubelet holds the key and asks again at ``beginRefreshAt``),
so it counts until it has expired or its Pod holds a newer one: per Pod, only
the latest issued request for the signer counts. A deleted Pod's requests go
with it (they are owned by the Pod).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from issuer.controllers.podcerts.requests import concluded
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


def depending_on_others(
    certificates: Iterable[IssuedPodCertificate], active_key_id: bytes, now: datetime
) -> int:
    """How many Pods' current certificates are valid and not signed by the active CA."""
    latest: dict[str, IssuedPodCertificate] = {}
    for certificate in certificates:
        held = latest.get(certificate.pod_uid)
        if held is None or certificate.issued_at > held.issued_at:
            latest[certificate.pod_uid] = certificate
    return sum(
        1
        for certificate in latest.values()
        if certificate.not_after > now and certificate.issuer_key_id != active_key_id
    )
