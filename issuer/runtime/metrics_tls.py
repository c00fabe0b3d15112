"""The TLS context of the issuer's HTTPS metrics port: a self-signed pair made at start.

As kubebuilder's scaffold does when no certificate is mounted: each replica
makes its own key and certificate in memory (the key is loaded through an
anonymous in-memory file and never written to a disk), valid for a year and
made again at every start. What protects the figures is the bearer token
check (``shared.metrics_access``), not who the server is.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from shared.certificates import common_name, key_pem, new_ec_key, self_signed_ca, signed_leaf

LIFETIME = dt.timedelta(days=365)


def self_signed_context(dns_names: tuple[str, ...], now: dt.datetime) -> ssl.SSLContext:
    """A server context for ``dns_names`` (and 127.0.0.1), TLS 1.2 or newer."""
    ca_key, key = new_ec_key(), new_ec_key()
    ca = self_signed_ca(common_name("pkiwarden issuer metrics"), ca_key, now, LIFETIME)
    leaf = signed_leaf(
        ca,
        ca_key,
        key.public_key(),
        common_name(dns_names[0] if dns_names else "pkiwarden-issuer"),
        now=now,
        lifetime=LIFETIME,
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        dns_names=dns_names,
        ip_addresses=("127.0.0.1",),
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    pem = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM
    )
    descriptor = os.memfd_create("issuer-metrics-tls", os.MFD_CLOEXEC)
    try:
        os.write(descriptor, pem + key_pem(key))
        context.load_cert_chain(f"/proc/self/fd/{descriptor}")
    finally:
        os.close(descriptor)
    return context
