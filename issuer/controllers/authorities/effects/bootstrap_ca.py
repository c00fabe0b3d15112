"""A development CA: a self-signed root written once as the CA Secret, never replaced."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from issuer.runtime import issuance
from shared import API_GROUP_VERSION, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from shared.kube.client import (
    CLUSTER_ROLE_BINDINGS,
    NAMESPACES,
    PKI_AUTHORITIES,
    SECRETS,
    ApiError,
    Kube,
)

BOOTSTRAP_DURATION = timedelta(days=3650)
BOOTSTRAP_COMMON_NAME = "pkiwarden development CA"


def ca_secret_body(
    namespace: str, name: str, certificate: x509.Certificate, key: issuance.PrivateKey
) -> dict[str, Any]:
    pem = issuance.certificate_to_pem(certificate)
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
            "tls.key": base64.b64encode(issuance.key_to_pem(key)).decode(),
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
    certificate, key = issuance.self_signed_ca(BOOTSTRAP_COMMON_NAME, now, BOOTSTRAP_DURATION)
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


def authority_body(name: str, secret_name: str) -> dict[str, Any]:
    """A PkiAuthority for the development CA: pkiwarden made it, so pkiwarden rotates it."""
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": "PkiAuthority",
        "metadata": {"name": name},
        "spec": {"secretName": secret_name, "generate": {"commonName": BOOTSTRAP_COMMON_NAME}},
    }


def bootstrap_authority(kube: Kube, name: str, secret_name: str) -> bool:
    """Create the PkiAuthority naming the CA Secret unless one of that name exists.

    True if it created it. An existing one is left as it is: its spec is the
    platform team's.
    """
    try:
        kube.create(PKI_AUTHORITIES.path(), authority_body(name, secret_name))
    except ApiError as error:
        if error.conflict:
            return False
        raise
    return True


def drop_binding(kube: Kube, name: str) -> bool:
    """Delete the ClusterRoleBinding ``name``: the bootstrap Job's own grant, once used.

    Creating the PkiAuthority is a one-time need; a binding left behind would
    be a standing grant nobody uses. True if it was there.
    """
    try:
        kube.delete(CLUSTER_ROLE_BINDINGS.path(name=name))
    except ApiError as error:
        if error.not_found:
            return False
        raise
    return True
