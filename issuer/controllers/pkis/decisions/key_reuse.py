"""Whether an issuance keeps the Secret's private key or makes a new one."""

from __future__ import annotations

from issuer.controllers.pkis.decisions.verdict import Trigger, Verdict
from issuer.controllers.pkis.inputs.stored import StoredCertificate
from issuer.runtime import issuance

DISTRUSTED = (Trigger.SECRET_ALTERED, Trigger.KEY_MISMATCH)
"""A key found next to a certificate it does not belong to, or put there by someone else."""


def keeps_key(verdict: Verdict) -> bool:
    """Whether ``rotationPolicy: Never`` allows keeping the stored key and it is fit to keep.

    Fit: pkiwarden wrote it (the Secret was not altered), it matches its
    certificate, and it is the algorithm and size the spec asks for now.
    """
    desired, stored = verdict.desired, verdict.stored
    if desired is None or stored is None or desired.rotate_key or verdict.why in DISTRUSTED:
        return False
    return stored.facts.key_spec == desired.key


def reusable_key(verdict: Verdict) -> issuance.PrivateKey | None:
    """The stored key when it is kept and was read with the Secret (the cache keeps none)."""
    return verdict.stored.key if keeps_key(verdict) and verdict.stored is not None else None


def same_key_source(stored: StoredCertificate, read: StoredCertificate | str) -> bool:
    """A Secret read again for its key still holds the certificate the verdict was about."""
    return (
        isinstance(read, StoredCertificate)
        and read.key is not None
        and read.facts.serial == stored.facts.serial
        and read.facts.key_matches
    )
