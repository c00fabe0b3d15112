"""Which Pod certificates still depend on a CA other than the active one.

A CA rotation keeps the previous CA trusted until nothing valid that it
signed remains (DESIGN.md, "Rotation"). A Pod certificate cannot be re-issued
by pkiwarden (the kubelet holds the key and asks again at ``beginRefreshAt``),
so it counts until it has expired or its Pod holds a newer one: per Pod, only
the latest issued request for the signer counts. A deleted Pod's requests go
with it (they are owned by the Pod).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from issuer.controllers.podcerts.inputs.issued import IssuedPodCertificate


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
