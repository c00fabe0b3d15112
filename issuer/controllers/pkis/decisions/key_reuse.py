"""Whether an issuance keeps the Secret's private key or makes a new one."""

from __future__ import annotations

from issuer.controllers.pkis.decisions.verdict import Trigger, Verdict
from issuer.runtime import issuance

DISTRUSTED = (Trigger.SECRET_ALTERED, Trigger.KEY_MISMATCH)
"""A key found next to a certificate it does not belong to, or put there by someone else."""


def reusable_key(verdict: Verdict) -> issuance.PrivateKey | None:
    """The stored key, when ``rotationPolicy: Never`` allows keeping it and it is fit to keep.

    Fit: pkiwarden wrote it (the Secret was not altered), it matches its
    certificate, and it is the algorithm and size the spec asks for now.
    """
    desired, stored = verdict.desired, verdict.stored
    if desired is None or stored is None or desired.rotate_key or verdict.why in DISTRUSTED:
        return None
    if issuance.key_spec_of(stored.key) != desired.key:
        return None
    return stored.key
