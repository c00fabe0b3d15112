"""Whether an authority ever had a CA, and what a CA Secret that is not there means; no I/O.

A missing CA Secret is two different situations. On a fresh install it never
existed: the issuer is about to generate the first CA (``spec.generate``), or
the platform team has yet to supply it; restoring a backup would be wrong
advice, as there is none. Once a CA has signed, a missing Secret is a lost CA:
restoring it keeps every issued certificate verifying, so that is the advice.
The PkiAuthority's status tells the two apart: the issuer records
``caEstablishedTime`` (and ``activeCA``) as soon as the CA can sign, and keeps
``caEstablishedTime`` while the Secret is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any


class CAHistory(Enum):
    """What is known of an authority's CA before looking at its Secret."""

    GENERATING = "generating"  # spec.generate and no CA yet: the issuer makes the first
    AWAITED = "awaited"  # no spec.generate and no CA yet: the platform team supplies it
    ESTABLISHED = "established"  # a CA was recorded: a Secret missing now is a lost CA
    UNRECORDED = "unrecorded"  # no PkiAuthority object: nothing recorded either way


def had_a_ca(authority: Mapping[str, Any]) -> bool:
    """True once the authority's status has named a CA.

    Its first CA is made by the issuer; a CA Secret that disappears later is
    reported, never silently replaced: a new CA would re-issue every
    certificate and break trust in the old one.
    """
    status = authority.get("status") or {}
    return bool(status.get("caEstablishedTime") or status.get("activeCA") or status.get("trusted"))


def ca_history(authority: Mapping[str, Any] | None) -> CAHistory:
    """The authority's CA history from its PkiAuthority object (None: there is none)."""
    if authority is None:
        return CAHistory.UNRECORDED
    if had_a_ca(authority):
        return CAHistory.ESTABLISHED
    if (authority.get("spec") or {}).get("generate") is not None:
        return CAHistory.GENERATING
    return CAHistory.AWAITED


def lost_ca_message(namespace: str, secret_name: str) -> str:
    """A CA Secret that held the signing CA is gone: restore it (the only lossless way)."""
    return (
        f'CA Secret "{namespace}/{secret_name}" does not exist; a cluster administrator must'
        " restore it from a backup, or create it with a new CA (type kubernetes.io/tls with"
        " tls.crt and tls.key); pkiwarden never replaces a lost CA by itself, even with"
        " spec.generate"
    )


def absent_ca_message(history: CAHistory, authority: str, namespace: str, secret_name: str) -> str:
    """Why there is no CA to sign with when its Secret does not exist, and who does what next."""
    where = f'CA Secret "{namespace}/{secret_name}"'
    if history is CAHistory.GENERATING:
        return (
            f'PkiAuthority "{authority}" has no CA yet: the issuer generates its first one'
            f" (spec.generate) into {where}; nothing needs doing, issuance follows once it"
            f" exists (if it stays like this, kubectl describe pkica {authority} says why)"
        )
    if history is CAHistory.AWAITED:
        return (
            f'PkiAuthority "{authority}" has no CA yet: {where} has not been created. A cluster'
            " administrator must create it (type kubernetes.io/tls with tls.crt and tls.key,"
            " and ca.crt for an intermediate), or add spec.generate to the PkiAuthority so"
            " pkiwarden makes one"
        )
    if history is CAHistory.UNRECORDED:
        return (
            f'{where} does not exist and there is no PkiAuthority "{authority}" to record a CA.'
            f' A cluster administrator must create PkiAuthority "{authority}" (spec.secretName'
            f' "{secret_name}", with spec.generate for a CA pkiwarden makes) or the Secret'
            " (type kubernetes.io/tls with tls.crt and tls.key); restore it from a backup only"
            " if it existed before"
        )
    return lost_ca_message(namespace, secret_name)
