"""The trust set: every CA certificate a valid leaf may chain to, in a stable order.

The bundle's bytes depend on which certificates are trusted, not on their
roles: promoting Next to Active changes nothing any consumer has to reload,
so a phase change that keeps the set writes no ConfigMap and no Secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization


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


def trust_set(
    active: x509.Certificate,
    next_ca: x509.Certificate | None,
    previous: x509.Certificate | None,
    *,
    previous_trusted: bool,
    now: datetime,
) -> tuple[Trusted, ...]:
    """Active, Next, then Previous (unless dropped); expired and repeated ones left out.

    An expired CA validates nothing, so keeping it would only make bundles
    grow; the active one stays even when expired, since leaving it out would
    hide the problem rather than report it.
    """
    candidates = [(active, Role.ACTIVE), (next_ca, Role.NEXT)]
    if previous_trusted:
        candidates.append((previous, Role.PREVIOUS))
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
