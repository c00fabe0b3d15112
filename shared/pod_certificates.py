"""Pod certificates: pkiwarden's signer names, annotation keys, key types and identities.

The words both the webhook (``shared.validation.pod_certificate``) and the
issuer's signer use, once. DESIGN.md, "Pod certificates", is the spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

SIGNER_PREFIX = "pkiwarden.dev/"
DNS_NAMES_ANNOTATION = "pkiwarden.dev/dns-names"
KNOWN_ANNOTATIONS = (DNS_NAMES_ANNOTATION,)
DEFAULT_AUTHORITY = "default"
DEFAULT_TRUST_DOMAIN = "cluster.local"

# The API server's bounds for maxExpirationSeconds and its default (certificates.k8s.io/v1).
MIN_LIFETIME = timedelta(hours=1)
MAX_LIFETIME = timedelta(seconds=7862400)
DEFAULT_MAX_EXPIRATION_SECONDS = 86400

# The kubelet's key types, in the order a fix suggests them, as pkiwarden's key specs.
# ECDSAP521 is a kubelet key type pkiwarden does not sign (no Pki may ask for it either).
KEY_TYPES: Mapping[str, tuple[str, int | None]] = {
    "ECDSAP256": ("ECDSA", 256),
    "ECDSAP384": ("ECDSA", 384),
    "ED25519": ("Ed25519", None),
    "RSA3072": ("RSA", 3072),
    "RSA4096": ("RSA", 4096),
}
KUBELET_KEY_TYPES = ("RSA3072", "RSA4096", "ECDSAP256", "ECDSAP384", "ECDSAP521", "ED25519")


def authority_of(signer: str) -> str | None:
    """The PkiAuthority a signer name asks for; None if it is not one of pkiwarden's."""
    if not signer.startswith(SIGNER_PREFIX):
        return None
    return signer[len(SIGNER_PREFIX) :]


def signer_name(authority: str) -> str:
    return SIGNER_PREFIX + authority


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """The Pod's identity as a URI SAN: its ServiceAccount, as SPIFFE's Kubernetes convention."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def requested_dns_names(annotations: Mapping[str, str]) -> tuple[str, ...]:
    """The names of ``pkiwarden.dev/dns-names``: comma-separated, blanks ignored."""
    text = annotations.get(DNS_NAMES_ANNOTATION, "")
    return tuple(name.strip() for name in text.split(",") if name.strip())
