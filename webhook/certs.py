"""The webhook's own CA and serving certificate: what to keep, what to make anew.

Pure apart from key generation: :func:`plan` looks at what is stored and the
time, and returns the material to store next, or None when nothing is due.
Rotation happens at 2/3 of a certificate's life, leaving a third of it for a
failed rotation to be noticed and retried.

When the CA itself rotates, the trust bundle given to the API server keeps the
previous CA (until it expires) next to the new one, so a connection to a
replica still serving the old certificate keeps verifying.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared import certificates

CA_COMMON_NAME = "pkiwarden-webhook-ca"


@dataclass(frozen=True)
class ServingIdentity:
    """The names the API server will use to reach the webhook."""

    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebhookCertificates:
    """PEM material; ``ca_bundle`` is what the API server trusts (the caBundle)."""

    ca_cert: bytes
    ca_key: bytes
    tls_cert: bytes
    tls_key: bytes
    ca_bundle: bytes

    def __repr__(self) -> str:  # keys never end up in a log line by accident
        return "WebhookCertificates(<redacted>)"


def renewal_time(certificate: x509.Certificate) -> dt.datetime:
    """When a certificate is due for rotation: 2/3 of the way through its validity."""
    start = certificate.not_valid_before_utc
    return start + (certificate.not_valid_after_utc - start) * 2 / 3


def plan(
    existing: WebhookCertificates | None,
    identity: ServingIdentity,
    now: dt.datetime,
    *,
    ca_lifetime: dt.timedelta,
    serving_lifetime: dt.timedelta,
    force_serving: bool = False,
) -> WebhookCertificates | None:
    """The material to store next, or None if ``existing`` is fine as it is."""
    parsed = _parse(existing)
    if existing is None or parsed is None:
        ca_cert, ca_key = _new_ca(now, ca_lifetime)
        tls_cert, tls_key = _new_serving(ca_cert, ca_key, identity, now, serving_lifetime)
        return _store(ca_cert, ca_key, tls_cert, tls_key, bundle=[ca_cert], now=now)
    ca_cert, ca_key, tls_cert, bundle = parsed
    if now >= renewal_time(ca_cert):
        old_ca = ca_cert
        ca_cert, ca_key = _new_ca(now, ca_lifetime)
        tls_cert, tls_key = _new_serving(ca_cert, ca_key, identity, now, serving_lifetime)
        return _store(
            ca_cert, ca_key, tls_cert, tls_key, bundle=[ca_cert, old_ca, *bundle], now=now
        )
    if force_serving or serving_due(tls_cert, ca_cert, identity, now):
        tls_cert, tls_key = _new_serving(ca_cert, ca_key, identity, now, serving_lifetime)
        return _store(ca_cert, ca_key, tls_cert, tls_key, bundle=[ca_cert, *bundle], now=now)
    if not serving_key_matches(existing):
        tls_cert, tls_key = _new_serving(ca_cert, ca_key, identity, now, serving_lifetime)
        return _store(ca_cert, ca_key, tls_cert, tls_key, bundle=[ca_cert, *bundle], now=now)
    if ca_cert not in bundle:
        return _store_pem(existing, bundle=[ca_cert, *bundle], now=now)
    return None


def serving_due(
    tls_cert: x509.Certificate,
    ca_cert: x509.Certificate,
    identity: ServingIdentity,
    now: dt.datetime,
) -> bool:
    """True if the serving certificate must be replaced: due, wrong names, or not from the CA."""
    if now >= renewal_time(tls_cert) or now < tls_cert.not_valid_before_utc:
        return True
    if _identity_of(tls_cert) != _normalised(identity):
        return True
    try:
        tls_cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return True
    return False


def serving_key_matches(material: WebhookCertificates) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(material.tls_cert)
        key = serialization.load_pem_private_key(material.tls_key, password=None)
    except ValueError:
        return False
    return bool(_public_bytes(cert.public_key()) == _public_bytes(key.public_key()))


def _public_bytes(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _parse(
    material: WebhookCertificates | None,
) -> (
    tuple[x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate, list[x509.Certificate]]
    | None
):
    if material is None:
        return None
    try:
        ca_cert = x509.load_pem_x509_certificate(material.ca_cert)
        ca_key = serialization.load_pem_private_key(material.ca_key, password=None)
        tls_cert = x509.load_pem_x509_certificate(material.tls_cert)
        bundle = x509.load_pem_x509_certificates(material.ca_bundle) if material.ca_bundle else []
    except ValueError:
        return None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        return None
    if _public_bytes(ca_cert.public_key()) != _public_bytes(ca_key.public_key()):
        return None
    return ca_cert, ca_key, tls_cert, bundle


def _new_ca(
    now: dt.datetime, lifetime: dt.timedelta
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = certificates.new_ec_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
            # A unique serial in the name tells CA generations apart in the bundle.
            x509.NameAttribute(NameOID.SERIAL_NUMBER, str(x509.random_serial_number())),
        ]
    )
    return certificates.self_signed_ca(name, key, now, lifetime), key


def _new_serving(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    identity: ServingIdentity,
    now: dt.datetime,
    lifetime: dt.timedelta,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = certificates.new_ec_key()
    first = identity.dns_names[0] if identity.dns_names else "pkiwarden-webhook"
    cert = certificates.signed_leaf(
        ca_cert,
        ca_key,
        key.public_key(),
        certificates.common_name(first),
        now=now,
        lifetime=lifetime,
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        dns_names=identity.dns_names,
        ip_addresses=identity.ip_addresses,
    )
    return cert, key


def _identity_of(cert: x509.Certificate) -> tuple[frozenset[str], frozenset[str]]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset(), frozenset()
    dns = frozenset(sans.get_values_for_type(x509.DNSName))
    ips = frozenset(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))
    return dns, ips


def _normalised(identity: ServingIdentity) -> tuple[frozenset[str], frozenset[str]]:
    ips = frozenset(str(ipaddress.ip_address(ip)) for ip in identity.ip_addresses)
    return frozenset(identity.dns_names), ips


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _bundle(cas: Sequence[x509.Certificate], now: dt.datetime) -> bytes:
    """Distinct, unexpired CA certificates, newest first."""
    kept: list[x509.Certificate] = []
    for ca in cas:
        if ca.not_valid_after_utc > now and ca not in kept:
            kept.append(ca)
    return b"".join(_pem(ca) for ca in kept)


def _store(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    tls_cert: x509.Certificate,
    tls_key: ec.EllipticCurvePrivateKey,
    *,
    bundle: Sequence[x509.Certificate],
    now: dt.datetime,
) -> WebhookCertificates:
    return WebhookCertificates(
        ca_cert=_pem(ca_cert),
        ca_key=_key_pem(ca_key),
        tls_cert=_pem(tls_cert),
        tls_key=_key_pem(tls_key),
        ca_bundle=_bundle(bundle, now),
    )


def _store_pem(
    material: WebhookCertificates, bundle: Sequence[x509.Certificate], now: dt.datetime
) -> WebhookCertificates:
    return WebhookCertificates(
        ca_cert=material.ca_cert,
        ca_key=material.ca_key,
        tls_cert=material.tls_cert,
        tls_key=material.tls_key,
        ca_bundle=_bundle(bundle, now),
    )
