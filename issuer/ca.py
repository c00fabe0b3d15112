"""The signing CA: read from a kubernetes.io/tls Secret in the issuer's own namespace.

A CA that cannot sign (missing, not a CA, key not matching, expired) is not an
exception but a :class:`CAProblem` whose message tells the administrator what
to fix; the application owner sees it as ``CAUnavailable``. The key is parsed
here and never leaves this process: messages name the Secret, never its data.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from issuer import x509 as pki_x509
from issuer.secret import secret_field
from shared import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from shared.kube.client import NAMESPACES, SECRETS, ApiError, Kube

BOOTSTRAP_DURATION = timedelta(days=3650)
BOOTSTRAP_COMMON_NAME = "pkiwarden development CA"


@dataclass(frozen=True, slots=True)
class CAProblem:
    """Why the CA cannot sign, for the administrator; never contains key material."""

    message: str


def load_ca(
    secret: Mapping[str, Any] | None, namespace: str, name: str, now: datetime
) -> pki_x509.SigningCA | CAProblem:
    """The CA in ``secret`` if it can sign now, else what is wrong with it."""
    where = f'CA Secret "{namespace}/{name}"'
    if secret is None:
        return CAProblem(
            f"{where} does not exist; a cluster administrator must create it"
            " (type kubernetes.io/tls with the CA's tls.crt and tls.key)"
        )
    data = secret.get("data") or {}
    try:
        cert_pem = secret_field(data, "tls.crt")
        key_pem = secret_field(data, "tls.key")
    except ValueError as error:
        return CAProblem(f"{where}: {error}")
    try:
        certificates = pki_x509.load_certificates(cert_pem)
    except ValueError:
        return CAProblem(f"{where} has no readable PEM certificate in tls.crt")
    try:
        key = pki_x509.load_key(key_pem)
    except (ValueError, TypeError):
        return CAProblem(f"{where} has no readable unencrypted PEM private key in tls.key")
    signer = certificates[0]
    subject = signer.subject.rfc4514_string() or "(empty subject)"
    if not pki_x509.is_ca_certificate(signer):
        return CAProblem(
            f"{where}: certificate {subject!r} is not a CA (BasicConstraints CA:false)"
        )
    if not pki_x509.key_matches_certificate(key, signer):
        return CAProblem(
            f"{where}: tls.key does not belong to the certificate {subject!r} in tls.crt"
        )
    if now >= signer.not_valid_after_utc:
        return CAProblem(
            f"{where}: certificate {subject!r} expired at"
            f" {signer.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}; a cluster administrator must"
            " renew the CA"
        )
    if now < signer.not_valid_before_utc:
        return CAProblem(
            f"{where}: certificate {subject!r} is not valid before"
            f" {signer.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}"
        )
    chain = tuple(c for c in certificates[1:] if not pki_x509.is_self_signed(c))
    root = _root(data, certificates)
    return pki_x509.SigningCA(certificate=signer, key=key, chain=chain, root=root)


def _root(data: Mapping[str, Any], certificates: list[x509.Certificate]) -> x509.Certificate:
    """The trust anchor for ca.crt: the Secret's ca.crt, else the top of tls.crt."""
    try:
        return pki_x509.load_certificates(secret_field(data, "ca.crt"))[-1]
    except ValueError:
        return certificates[-1]


# --------------------------------------------------------------------------- bootstrap


def ca_secret_body(
    namespace: str, name: str, certificate: x509.Certificate, key: pki_x509.PrivateKey
) -> dict[str, Any]:
    pem = pki_x509.certificate_to_pem(certificate)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, "app.kubernetes.io/component": "ca"},
        },
        "data": {
            "tls.crt": base64.b64encode(pem).decode(),
            "tls.key": base64.b64encode(pki_x509.key_to_pem(key)).decode(),
            "ca.crt": base64.b64encode(pem).decode(),
        },
    }


def bootstrap_ca(kube: Kube, namespace: str, name: str, now: datetime) -> bool:
    """Create a self-signed root CA Secret (and its namespace) unless one exists.

    Returns True if it created the Secret. An existing Secret is never
    replaced: it may be a real CA someone put there. Creating and treating
    "already exists" as done needs no permission to read the CA, so the
    bootstrap Job cannot read the key it writes.
    """
    certificate, key = pki_x509.self_signed_ca(BOOTSTRAP_COMMON_NAME, now, BOOTSTRAP_DURATION)
    body = ca_secret_body(namespace, name, certificate, key)
    for attempt in range(2):
        try:
            kube.create(SECRETS.path(namespace), body)
            return True
        except ApiError as error:
            if error.conflict:  # it exists, or someone bootstrapped at the same moment
                return False
            if not error.not_found or attempt:
                raise
        try:  # the namespace is missing: create it, then try once more
            kube.create(
                NAMESPACES.path(),
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            )
        except ApiError as error:
            if not error.conflict:
                raise
    return False
