"""A PodCertificateRequest as the signer reads it: the ask, the Pod, the public key.

The kubelet's stub CSR carries only the public key (its signature is checked by
the API server at admission), so the key type is read from that key; a CSR
that does not parse is a request this signer cannot answer but with a denial.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from shared.clock import parse_rfc3339
from shared.kube.client import Resource
from shared.validation.pod_certificate import PodCertificateAsk

POD_CERTIFICATE_REQUESTS = Resource("certificates.k8s.io/v1", "podcertificaterequests")
TERMINAL_CONDITIONS = ("Issued", "Denied", "Failed")
UNREADABLE_KEY = "unreadable"


@dataclass(frozen=True)
class PodCertificateRequest:
    """The fields of one request the decision reads."""

    namespace: str
    name: str
    pod_name: str
    pod_uid: str
    created: datetime | None
    ask: PodCertificateAsk
    public_key: CertificatePublicKeyTypes | None  # None: the stub CSR did not parse
    concluded: str | None  # the terminal condition it already has, if any


def key_type_of(public_key: CertificatePublicKeyTypes | None) -> str:
    """The kubelet's name of a key type (``ECDSAP256``, ``RSA3072``, ``ED25519``)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"ECDSAP{public_key.curve.key_size}"
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA{public_key.key_size}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ED25519"
    return UNREADABLE_KEY if public_key is None else type(public_key).__name__


def _public_key(stub: object) -> CertificatePublicKeyTypes | None:
    if not isinstance(stub, str):
        return None
    try:
        return x509.load_der_x509_csr(base64.b64decode(stub)).public_key()
    except (ValueError, binascii.Error):
        return None


def concluded(request: Mapping[str, Any]) -> str | None:
    """The terminal condition (Issued, Denied, Failed) a request has, if any."""
    for condition in (request.get("status") or {}).get("conditions") or []:
        if condition.get("type") in TERMINAL_CONDITIONS and condition.get("status") == "True":
            return str(condition["type"])
    return None


def read_request(request: Mapping[str, Any]) -> PodCertificateRequest:
    metadata = request.get("metadata") or {}
    spec = request.get("spec") or {}
    public_key = _public_key(spec.get("stubPKCS10Request"))
    annotations = spec.get("unverifiedUserAnnotations") or {}
    seconds = spec.get("maxExpirationSeconds")
    ask = PodCertificateAsk(
        namespace=str(metadata.get("namespace") or ""),
        service_account=str(spec.get("serviceAccountName") or ""),
        signer=str(spec.get("signerName") or ""),
        key_type=key_type_of(public_key),
        max_expiration_seconds=seconds if isinstance(seconds, int) else None,
        annotations={str(k): str(v) for k, v in annotations.items()},
    )
    return PodCertificateRequest(
        namespace=ask.namespace,
        name=str(metadata.get("name") or ""),
        pod_name=str(spec.get("podName") or ""),
        pod_uid=str(spec.get("podUID") or ""),
        created=parse_rfc3339(metadata.get("creationTimestamp")),
        ask=ask,
        public_key=public_key,
        concluded=concluded(request),
    )
