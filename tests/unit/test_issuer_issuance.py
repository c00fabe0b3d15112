"""Issuance with real keys and certificates: each algorithm, the extensions, the CA's limits."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from issuer.runtime import issuance
from shared.certificates import serial_hex
from tests.unit.builders import NOW, issued_secret, leaf_of, make_ca, make_pki

CA = make_ca()
REQUEST = issuance.LeafRequest(
    common_name="app1.app1.svc",
    dns_names=("app1.app1.svc", "app1.app1.svc.cluster.local"),
    ip_addresses=("10.0.0.7", "fd00::7"),
    usages=("server auth", "client auth", "digital signature", "key encipherment"),
    duration=timedelta(hours=2160),
)
SPECS = [
    issuance.KeySpec(issuance.KeyAlgorithm.ECDSA, 256),
    issuance.KeySpec(issuance.KeyAlgorithm.ECDSA, 384),
    issuance.KeySpec(issuance.KeyAlgorithm.RSA, 2048),
    issuance.KeySpec(issuance.KeyAlgorithm.RSA, 3072),
    issuance.KeySpec(issuance.KeyAlgorithm.RSA, 4096),
    issuance.KeySpec(issuance.KeyAlgorithm.ED25519),
]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_each_algorithm_gives_a_certificate_the_ca_signed(spec: issuance.KeySpec) -> None:
    key = issuance.generate_key(spec)
    assert issuance.key_spec_of(key) == spec
    cert = issuance.issue_leaf(REQUEST, key, CA, NOW).certificate
    cert.verify_directly_issued_by(CA.certificate)
    assert issuance.signed_by(cert, CA.certificate)
    assert issuance.key_matches_certificate(key, cert)
    reloaded = issuance.load_key(issuance.key_to_pem(key))
    assert issuance.key_matches_certificate(reloaded, cert)
    assert issuance.key_to_pem(key).startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8


def test_certificate_extensions_follow_the_request() -> None:
    key = issuance.generate_key(SPECS[0])
    cert = issuance.issue_leaf(REQUEST, key, CA, NOW).certificate
    ext = cert.extensions
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == list(REQUEST.dns_names)
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.7"),
        ipaddress.ip_address("fd00::7"),
    ]
    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = CA.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert issuance.differences(cert, REQUEST) == []


def test_validity_is_backdated_and_serials_are_random_positive_128_bit() -> None:
    key = issuance.generate_key(SPECS[0])
    certs = [issuance.issue_leaf(REQUEST, key, CA, NOW).certificate for _ in range(20)]
    assert certs[0].not_valid_before_utc == NOW - timedelta(minutes=5)
    assert certs[0].not_valid_after_utc == NOW + REQUEST.duration
    serials = {c.serial_number for c in certs}
    assert len(serials) == 20
    assert all(0 < s < 2**128 for s in serials)
    assert max(s.bit_length() for s in serials) > 120


def test_not_after_is_clamped_to_the_ca() -> None:
    short = make_ca("short CA", days=10)
    key = issuance.generate_key(SPECS[0])
    issued = issuance.issue_leaf(REQUEST, key, short, NOW)
    assert issued.clamped
    assert issued.certificate.not_valid_after_utc == short.certificate.not_valid_after_utc
    assert not issuance.issue_leaf(REQUEST, key, CA, NOW).clamped


def test_differences_name_what_no_longer_matches() -> None:
    key = issuance.generate_key(SPECS[0])
    cert = issuance.issue_leaf(REQUEST, key, CA, NOW).certificate
    other = issuance.LeafRequest(
        common_name="x.app1.svc",
        dns_names=("x.app1.svc",),
        ip_addresses=(),
        usages=("server auth",),
        duration=REQUEST.duration,
    )
    found = " | ".join(issuance.differences(cert, other))
    for words in ("commonName", "DNS names", "IP addresses", "usages"):
        assert words in found


def test_a_certificate_from_another_ca_is_not_signed_by_ours() -> None:
    key = issuance.generate_key(SPECS[0])
    cert = issuance.issue_leaf(REQUEST, key, make_ca("another"), NOW).certificate
    assert not issuance.signed_by(cert, CA.certificate)


def test_bootstrap_ca_is_a_ca() -> None:
    assert issuance.is_ca_certificate(CA.certificate)
    assert issuance.is_self_signed(CA.certificate)


@pytest.mark.parametrize(
    ("serial", "printed"),
    [
        # openssl x509 -serial prints whole bytes: a leading zero is kept.
        (0x0DF32C18C4D7ABC2AE158F697AC3C724, "0DF32C18C4D7ABC2AE158F697AC3C724"),
        (0xDF32C18C4D7ABC2AE158F697AC3C7241, "DF32C18C4D7ABC2AE158F697AC3C7241"),
        (0x1, "01"),
        (0xABC, "0ABC"),
    ],
)
def test_serials_are_printed_as_openssl_prints_them(serial: int, printed: str) -> None:
    assert serial_hex(serial) == printed


def test_a_secret_annotated_before_serials_kept_their_leading_zero_is_not_reissued() -> None:
    """An odd-length annotation written by an earlier issuer names the same certificate."""
    ca = make_ca()
    pki = make_pki()
    secret = issued_secret(pki, ca)
    certificate = leaf_of(secret)
    legacy = f"{certificate.serial_number:X}"
    assert issuance.same_serial(legacy, certificate)
    assert issuance.same_serial(serial_hex(certificate.serial_number), certificate)
    assert not issuance.same_serial("ABCD", certificate)
    assert not issuance.same_serial("not hex", certificate)
