"""The local control plane's key material: who the admin is, what the server is valid for."""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pkiwarden.local.certs import (
    ADMIN_GROUP,
    ADMIN_USER,
    new_ca,
    new_client_cert,
    new_serving_cert,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_admin_certificate_names_user_and_group_for_the_api_server() -> None:
    ca = new_ca(NOW)
    cert = x509.load_pem_x509_certificate(
        new_client_cert(ca, ADMIN_USER, [ADMIN_GROUP], NOW).cert_pem
    )
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "pkiwarden-admin"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters"
    ]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_serving_certificate_covers_loopback_and_in_cluster_names() -> None:
    ca = new_ca(NOW)
    cert = x509.load_pem_x509_certificate(new_serving_cert(ca, NOW, "127.201.7.1").cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("127.201.7.1"),
    ]
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    cert.verify_directly_issued_by(ca_cert)
    assert cert.not_valid_before_utc < NOW < cert.not_valid_after_utc
