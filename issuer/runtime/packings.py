"""What the issuer's largest caches pack their objects against (``shared.kube.packing``).

Each is a typical object of the kind as its cache keeps it (the same fields,
in the same order), with the words and keys most objects repeat: deflate
then stores little more than what is unique to each object (names, uids,
serials, timestamps). An object unlike them is packed as exactly, only less
tightly.
"""

from __future__ import annotations

from issuer.runtime.issued_facts import PackedIssuedSecrets
from shared.kube.packing import DeflatedJSON

_ID = "00000000-0000-0000-0000-000000000000"
_SERIAL = "0000000000000000000000000000000000000000"
_TIME = "2026-01-01T00:00:00Z"
_PKI_HEAD = {"apiVersion": "pkiwarden.dev/v1alpha1", "kind": "Pki"}
_SPEC = {
    "serviceName": "web",
    "secretName": "web-tls",
    "dnsNames": ["web.default.svc", "web.default.svc.cluster.local"],
    "ipAddresses": ["10.0.0.1"],
    "commonName": "web.default.svc",
    "duration": "2160h",
    "renewBefore": "720h",
    "usages": ["server auth", "client auth", "digital signature", "key encipherment"],
    "authority": "default",
}
_METADATA = {
    "name": "web",
    "namespace": "default",
    "uid": _ID,
    "resourceVersion": "1000000",
    "generation": 1,
}


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, object]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": _TIME,
        "observedGeneration": 1,
    }


_FAILING = {
    **_PKI_HEAD,
    "spec": {**_SPEC, "privateKey": {"algorithm": "RSA", "size": 2048, "rotationPolicy": "Never"}},
    "status": {
        "observedGeneration": 1,
        "conditions": [
            _condition("Ready", "False", "NotAllowed", "not allowed by PkiPolicy"),
            _condition(
                "Issuing",
                "True",
                "New",
                "a new certificate is needed but issuance failed (NotAllowed);"
                f" next attempt at {_TIME}",
            ),
        ],
        "failedIssuanceAttempts": 1,
        "lastFailureTime": _TIME,
        "nextRetryTime": _TIME,
    },
    "metadata": _METADATA,
}
_READY = {
    **_PKI_HEAD,
    "spec": {"serviceName": "web", "privateKey": {"algorithm": "ECDSA", "size": 256}},
    "status": {
        "observedGeneration": 1,
        "conditions": [
            _condition(
                "Ready",
                "True",
                "Issued",
                f"certificate {_SERIAL} issued into Secret web-tls, valid until {_TIME}",
            ),
            _condition(
                "Issuing", "False", "UpToDate", "the Secret holds a certificate matching the spec"
            ),
        ],
        "secretName": "web-tls",
        "serialNumber": _SERIAL,
        "notBefore": _TIME,
        "notAfter": _TIME,
        "renewalTime": _TIME,
        "failedIssuanceAttempts": 0,
    },
    "metadata": _METADATA,
}

PKIS = DeflatedJSON(_FAILING, _READY)
"""The Pki cache's objects: spec, status, and the metadata the controllers read
(``caches.PKI_METADATA``); a Ready Pki packs to about 120 bytes."""

PODS = DeflatedJSON(
    {
        "spec": {
            "volumes": [{"name": "tls", "secret": {"secretName": "web-tls"}}],
            "containers": [
                {"name": "app", "env": [{"valueFrom": {"secretKeyRef": {"name": "web-tls"}}}]},
                {"name": "app", "envFrom": [{"secretRef": {"name": "web-tls"}}]},
            ],
        },
        "metadata": {"name": "web", "namespace": "default", "uid": _ID, "resourceVersion": "1"},
    }
)
"""The Pod watch's objects: a Pod cut down to its name, uid and Secret references
(``consumers.reading_pod``), in the order the cache keeps their fields."""

ISSUED_SECRETS = PackedIssuedSecrets(
    {
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": "web-tls",
            "namespace": "default",
            "uid": _ID,
            "resourceVersion": "1000000",
            "labels": {"app.kubernetes.io/managed-by": "pkiwarden", "pkiwarden.dev/pki": "web"},
        },
        "data": {},
    }
)
"""pkiwarden's Secrets, in the form ``issued_facts.keep_facts`` gives them."""
