"""Small X.509 building blocks for pkiwarden's own infrastructure certificates.

The webhook's serving CA, the issuer's development root CA and the local
control plane's certificates are all "a self-signed CA" and "a leaf it
signs"; they are built here once. Application certificates, with their
usages, key choices and SANs from a Pki, are the issuer's business
(``issuer/issuance.py``), which uses the same CA builder.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

# Clocks of the API server and our processes may differ a little; a
# certificate that is "not yet valid" for a minute fails every handshake.
BACKDATE = dt.timedelta(minutes=5)


def _key_usage(*, ca: bool, key_encipherment: bool) -> x509.KeyUsage:
    """Digital signature always; certificate and CRL signing for a CA."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


CA_KEY_USAGE = _key_usage(ca=True, key_encipherment=False)


def leaf_key_usage(public_key: CertificatePublicKeyTypes) -> x509.KeyUsage:
    """A TLS leaf's: digital signature, and key encipherment for an RSA key.

    TLS 1.2's RSA key exchange encrypts to the leaf's key, which a peer checks
    against key encipherment; EC and Ed25519 keys only ever sign.
    """
    return _key_usage(ca=False, key_encipherment=isinstance(public_key, rsa.RSAPublicKey))


def new_ec_key() -> ec.EllipticCurvePrivateKey:
    """P-256: fast to generate, accepted by the API server, Go and Python alike."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def common_name(name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(x509.NameOID.COMMON_NAME, name)]
    if organization is not None:
        attributes.append(x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384 | None:
    """Ed25519 signs without a separate hash; P-384 pairs with SHA-384."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def self_signed_ca(
    name: x509.Name,
    key: CertificateIssuerPrivateKeyTypes,
    now: dt.datetime,
    lifetime: dt.timedelta,
    *,
    path_length: int | None = 0,
) -> x509.Certificate:
    """A root CA certificate for ``key``; ``path_length=0`` signs leaves only."""
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, signature_hash(key))
    )


def signed_leaf(
    ca_cert: x509.Certificate,
    ca_key: CertificateIssuerPrivateKeyTypes,
    public_key: CertificatePublicKeyTypes,
    subject: x509.Name,
    *,
    now: dt.datetime,
    lifetime: dt.timedelta,
    usages: Sequence[x509.ObjectIdentifier],
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
) -> x509.Certificate:
    """A server or client certificate signed by ``ca_cert``, never outliving it."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + lifetime, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(leaf_key_usage(public_key), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, signature_hash(ca_key))


def serial_hex(serial: int) -> str:
    """A serial number as ``openssl x509 -serial`` prints it: upper-case hex, whole bytes.

    Every serial pkiwarden shows (status, Events, annotations, logs) goes
    through here, so what a user copies from one matches the others.
    """
    digits = f"{serial:X}"
    return digits if len(digits) % 2 == 0 else "0" + digits


def parse_serial(text: object) -> int | None:
    """A serial printed in hex (with or without the leading zero), or None if it is not one."""
    try:
        return int(str(text), 16) if text else None
    except ValueError:
        return None
