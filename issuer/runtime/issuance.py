"""Keys and certificates: the cryptography the issuer does, with no I/O.

Everything here takes and returns values (keys, certificates, PEM bytes), so
the verdict can ask "does this certificate still match the spec?" and the tests
can issue real certificates without a cluster.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared import certificates

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

BACKDATE = timedelta(minutes=5)
"""notBefore lies this far in the past, so a peer whose clock is a little behind accepts it."""


class KeyAlgorithm(StrEnum):
    ECDSA = "ECDSA"
    RSA = "RSA"
    ED25519 = "Ed25519"


_CURVES: dict[int, type[ec.EllipticCurve]] = {256: ec.SECP256R1, 384: ec.SECP384R1}
_RSA_SIZES = (2048, 3072, 4096)


@dataclass(frozen=True, slots=True)
class KeySpec:
    """``spec.privateKey`` minus the rotation policy; ``size`` is None for Ed25519."""

    algorithm: KeyAlgorithm
    size: int | None = None

    def __str__(self) -> str:
        return self.algorithm.value + (f"-{self.size}" if self.size else "")


# The usages of spec.usages (cert-manager's spelling) split into the two extensions.
_KEY_USAGE_FLAGS: dict[str, str] = {
    "digital signature": "digital_signature",
    "content commitment": "content_commitment",
    "key encipherment": "key_encipherment",
    "data encipherment": "data_encipherment",
    "key agreement": "key_agreement",
}
_EXTENDED_USAGES: dict[str, x509.ObjectIdentifier] = {
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
}


@dataclass(frozen=True, slots=True)
class LeafRequest:
    """What the certificate must say: everything in it that comes from the Pki's spec."""

    common_name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    usages: tuple[str, ...]
    duration: timedelta


@dataclass(frozen=True)
class SigningCA:
    """The CA that signs: its certificate and key, the chain above it and the root.

    ``chain`` holds the certificates between the signer and the root (exclusive
    of both); the root goes into ``ca.crt``, never into ``tls.crt``.
    """

    certificate: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...]
    root: x509.Certificate
    # The trust set (PEM) for an issued Secret's ca.crt: every CA a valid
    # certificate may chain to, more than the root while the CA rotates.
    trust: bytes = b""


@dataclass(frozen=True)
class IssuedCertificate:
    certificate: x509.Certificate
    clamped: bool  # notAfter was cut back to the CA's own notAfter


# --------------------------------------------------------------------------- keys


def generate_key(spec: KeySpec) -> PrivateKey:
    if spec.algorithm is KeyAlgorithm.ECDSA:
        curve = _CURVES.get(spec.size or 256)
        if curve is None:
            raise ValueError(f"ECDSA size {spec.size} is not supported; use 256 or 384")
        return ec.generate_private_key(curve())
    if spec.algorithm is KeyAlgorithm.RSA:
        size = spec.size or 2048
        if size not in _RSA_SIZES:
            raise ValueError(f"RSA size {size} is not supported; use 2048, 3072 or 4096")
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    return ed25519.Ed25519PrivateKey.generate()


def key_spec_of(key: PrivateKey) -> KeySpec:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return KeySpec(KeyAlgorithm.ECDSA, key.curve.key_size)
    if isinstance(key, rsa.RSAPrivateKey):
        return KeySpec(KeyAlgorithm.RSA, key.key_size)
    return KeySpec(KeyAlgorithm.ED25519)


def key_to_pem(key: PrivateKey) -> bytes:
    """PKCS#8, unencrypted: what Go, OpenSSL and Python's ssl all read."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(pem: bytes) -> PrivateKey:
    """Parse a PEM private key; ValueError if it is not one of the supported kinds."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def _spki(public: CertificatePublicKeyTypes) -> bytes:
    der: bytes = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def subject_key_id(certificate: x509.Certificate) -> bytes:
    """The key id a certificate's subject key is known by: what its leaves name as issuer."""
    try:
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
    return ski.digest


def key_matches_certificate(key: PrivateKey, certificate: x509.Certificate) -> bool:
    return _spki(key.public_key()) == _spki(certificate.public_key())


# --------------------------------------------------------------------------- certificates


def certificate_to_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in order; ValueError if there is none."""
    certificates = x509.load_pem_x509_certificates(pem)
    if not certificates:
        raise ValueError("no certificate found")
    return certificates


def same_serial(text: str, certificate: x509.Certificate) -> bool:
    """Whether ``text`` (hex, with or without a leading zero) is the certificate's serial."""
    return certificates.parse_serial(text) == certificate.serial_number


def is_self_signed(certificate: x509.Certificate) -> bool:
    return certificate.issuer == certificate.subject and signed_by(certificate, certificate)


def is_ca_certificate(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True if ``issuer``'s key made ``certificate``'s signature."""
    if certificate.issuer != issuer.subject:
        return False
    public = issuer.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            assert certificate.signature_hash_algorithm is not None
            public.verify(
                certificate.signature,
                certificate.tbs_certificate_bytes,
                padding.PKCS1v15(),
                certificate.signature_hash_algorithm,
            )
        elif isinstance(public, ec.EllipticCurvePublicKey):
            assert certificate.signature_hash_algorithm is not None
            public.verify(
                certificate.signature,
                certificate.tbs_certificate_bytes,
                ec.ECDSA(certificate.signature_hash_algorithm),
            )
        elif isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(certificate.signature, certificate.tbs_certificate_bytes)
        else:
            return False
    except (InvalidSignature, AssertionError):
        return False
    return True


def random_serial() -> int:
    """128 random bits: positive, unguessable, within RFC 5280's 20 octets."""
    return secrets.randbits(128) or 1


def _key_usage(usages: Sequence[str]) -> x509.KeyUsage:
    flags = {flag: False for flag in _KEY_USAGE_FLAGS.values()}
    for usage in usages:
        if usage in _KEY_USAGE_FLAGS:
            flags[_KEY_USAGE_FLAGS[usage]] = True
    return x509.KeyUsage(
        key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False, **flags
    )


def _san(request: LeafRequest) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in request.dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in request.ip_addresses]
    return names


def issue_leaf(
    request: LeafRequest, key: PrivateKey, ca: SigningCA, now: datetime
) -> IssuedCertificate:
    """Sign a leaf for ``key``; notAfter never passes the CA's own notAfter."""
    not_after = now + request.duration
    ca_not_after = ca.certificate.not_valid_after_utc
    clamped = not_after > ca_not_after
    if clamped:
        not_after = ca_not_after
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(request.common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(max(now - BACKDATE, ca.certificate.not_valid_before_utc))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(request.usages), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(authority_key_identifier(ca.certificate), critical=False)
    )
    extended = [_EXTENDED_USAGES[u] for u in request.usages if u in _EXTENDED_USAGES]
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    san = _san(request)
    if san:
        # Critical only when the subject is empty (RFC 5280 4.2.1.6).
        builder = builder.add_extension(
            x509.SubjectAlternativeName(san), critical=not request.common_name
        )
    certificate = builder.sign(ca.key, certificates.signature_hash(ca.key))
    return IssuedCertificate(certificate, clamped)


def _subject(common_name: str) -> x509.Name:
    if not common_name:
        return x509.Name([])
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def authority_key_identifier(ca: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


# --------------------------------------------------------------------------- reading back


@dataclass(frozen=True, slots=True)
class LeafFacts:
    """What a certificate says, in the terms of the spec, to compare against a LeafRequest."""

    common_name: str
    dns_names: frozenset[str]
    ip_addresses: frozenset[IPAddress]
    usages: frozenset[str]


def facts_of(certificate: x509.Certificate) -> LeafFacts:
    cn = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = frozenset(san.get_values_for_type(x509.DNSName))
        ips = frozenset(san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = frozenset(), frozenset()
    usages: set[str] = set()
    try:
        ku = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        usages |= {name for name, flag in _KEY_USAGE_FLAGS.items() if getattr(ku, flag)}
    except x509.ExtensionNotFound:
        pass
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usages |= {name for name, oid in _EXTENDED_USAGES.items() if oid in eku}
    except x509.ExtensionNotFound:
        pass
    return LeafFacts(
        common_name=str(cn[0].value) if cn else "",
        dns_names=dns,
        ip_addresses=ips,  # type: ignore[arg-type]
        usages=frozenset(usages),
    )


def differences(certificate: x509.Certificate, request: LeafRequest) -> list[str]:
    """Which of the spec's promises the certificate breaks, in words; empty if none."""
    facts = facts_of(certificate)
    found: list[str] = []
    if facts.common_name != request.common_name:
        found.append(
            f"commonName is {facts.common_name!r}, the spec asks for {request.common_name!r}"
        )
    if facts.dns_names != frozenset(request.dns_names):
        found.append("DNS names differ from spec.dnsNames")
    if facts.ip_addresses != frozenset(ipaddress.ip_address(ip) for ip in request.ip_addresses):
        found.append("IP addresses differ from spec.ipAddresses")
    if facts.usages != frozenset(request.usages):
        found.append("usages differ from spec.usages")
    return found


# --------------------------------------------------------------------------- a CA, for bootstrap


def self_signed_ca(
    common_name: str, now: datetime, duration: timedelta, spec: KeySpec | None = None
) -> tuple[x509.Certificate, PrivateKey]:
    """A root CA certificate and its key, for development clusters."""
    key = generate_key(spec or KeySpec(KeyAlgorithm.ECDSA, 256))
    certificate = certificates.self_signed_ca(
        _subject(common_name), key, now, duration, path_length=None
    )
    return certificate, key


def secret_field(data: Mapping[str, Any], key: str) -> bytes:
    """One base64 field of a Secret's data; ValueError says what is wrong, in words."""
    value = data.get(key)
    if not value:
        raise ValueError(f"{key} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{key} is not base64") from None
