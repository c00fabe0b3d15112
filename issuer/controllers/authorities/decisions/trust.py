"""The trust set: every trust anchor a valid leaf may chain to, in a stable order.

The anchor of a self-signed CA is the CA itself; of an intermediate (a
supplied CA under an offline root), the root it chains up to, as given in its
Secret's ``ca.crt``: apps trust the root, and leaves carry the chain. The
bundle's bytes depend on which anchors are trusted, not on their roles:
promoting Next to Active changes nothing any consumer has to reload, so a
phase change that keeps the set writes no ConfigMap and no Secret, and a new
intermediate under the same root needs no trust change at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from issuer.runtime import issuance


class Role(StrEnum):
    ACTIVE = "Active"  # signs now
    NEXT = "Next"  # trusted ahead of signing (Propagating)
    PREVIOUS = "Previous"  # signed before, trusted while anything valid depends on it


@dataclass(frozen=True)
class Trusted:
    certificate: x509.Certificate
    role: Role


def fingerprint(certificate: x509.Certificate) -> bytes:
    return certificate.fingerprint(hashes.SHA256())


def anchor(
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
    roots: Sequence[x509.Certificate] = (),
) -> x509.Certificate:
    """What ``certificate`` chains up to through ``chain``: a root of ``roots``, or itself.

    A self-signed CA is its own anchor. An intermediate whose issuer is
    nowhere to be found stays its own anchor (a consumer then needs it as a
    partial chain), rather than trusting a root that did not sign it.
    """
    current = certificate
    for _ in range(len(chain) + 1):
        if issuance.is_self_signed(current):
            return current
        for root in roots:
            if root.subject == current.issuer and issuance.signed_by(current, root):
                return root
        above = next(
            (c for c in chain if c.subject == current.issuer and issuance.signed_by(current, c)),
            None,
        )
        if above is None:
            return current
        current = above
    return current


def trust_set(
    active: x509.Certificate,
    next_ca: x509.Certificate | None,
    previous: x509.Certificate | None,
    *,
    previous_trusted: bool,
    now: datetime,
    anchor_of: Callable[[x509.Certificate], x509.Certificate] = lambda c: c,
) -> tuple[Trusted, ...]:
    """The anchors of Active, Next, then Previous (unless dropped); expired and repeated ones out.

    An expired CA validates nothing, so keeping it would only make bundles
    grow; the active one stays even when expired, since leaving it out would
    hide the problem rather than report it. Two CAs under one root are one
    entry, in the role of the first.
    """
    candidates: list[tuple[x509.Certificate | None, Role]] = [
        (None if c is None else anchor_of(c), role)
        for c, role in ((active, Role.ACTIVE), (next_ca, Role.NEXT))
    ]
    if previous_trusted:
        candidates.append((None if previous is None else anchor_of(previous), Role.PREVIOUS))
    chosen: list[Trusted] = []
    seen: set[bytes] = set()
    for certificate, role in candidates:
        if certificate is None:
            continue
        if role is not Role.ACTIVE and now >= certificate.not_valid_after_utc:
            continue
        print_ = fingerprint(certificate)
        if print_ in seen:
            continue
        seen.add(print_)
        chosen.append(Trusted(certificate, role))
    return tuple(chosen)


def bundle_pem(trusted: Iterable[Trusted]) -> bytes:
    """The PEM bundle, ordered by notBefore then serial: independent of roles."""
    certificates = sorted(
        (entry.certificate for entry in trusted),
        key=lambda c: (c.not_valid_before_utc, c.serial_number),
    )
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def bundle_certificates(pem: bytes) -> Sequence[x509.Certificate]:
    """The certificates of a bundle; empty if it is not PEM."""
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        return ()


def union_bundle(bundles: Iterable[str]) -> str:
    """Several trust sets as one PEM bundle: each certificate once, in the order of ``bundle_pem``.

    A namespace that may use several authorities trusts every CA any of them
    may sign with; an app reading ``ca.crt`` then verifies peers of each.
    """
    seen: dict[bytes, x509.Certificate] = {}
    for bundle in bundles:
        for certificate in bundle_certificates(bundle.encode()):
            seen.setdefault(fingerprint(certificate), certificate)
    ordered = sorted(seen.values(), key=lambda c: (c.not_valid_before_utc, c.serial_number))
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in ordered).decode()
