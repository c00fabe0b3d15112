"""The PkiAuthority schema: which CA signs, how it rotates, where a rotation stands.

Kept beside ``shared.schema`` (same conventions, same helpers) rather than in
it, so the CA's kind can grow without touching the Pki and PkiPolicy schemas.
"""

from __future__ import annotations

from typing import Final

from shared.schema import _CONDITION as _PKI_CONDITION
from shared.schema import (
    _KEY_ALGORITHMS,
    JSON,
    _key_size_rule,
    _kind,
    _kind_fields,
    _props,
    _string,
)

_PHASES = ["Stable", "Propagating", "Reissuing", "Retiring"]
_ROLES = ["Active", "Next", "Previous"]

_CA_CERTIFICATE: JSON = {
    "type": "object",
    "description": "One CA certificate.",
    "properties": {
        "serialNumber": _string("Serial number, in hex.", maxLength=64),
        "subject": _string("Subject, as an RFC 4514 string.", maxLength=1024),
        "notAfter": _string("End of the certificate's validity.", format="date-time"),
        "role": _string(
            "Active: signs now. Next: trusted, will sign. Previous: signed before, still trusted.",
            enum=_ROLES,
        ),
    },
}

# The Pki's condition shape, described for the authority.
_CONDITION: JSON = {
    **_PKI_CONDITION,
    "description": "One aspect of the authority's state.",
    "properties": {
        **_PKI_CONDITION["properties"],
        "type": _string("Ready (the CA can sign) or Rotating.", maxLength=64),
    },
}

PKI_AUTHORITY_SCHEMA: Final[JSON] = {
    **_kind(
        "PkiAuthority",
        (
            "The CA that signs every Pki's certificate: the Secret that holds it, how it rotates, "
            "and where a rotation stands. Trust in it is published to every namespace a PkiPolicy "
            "selects, as the ConfigMap pkiwarden-ca.crt."
        ),
    ),
    "properties": {
        **_kind_fields("PkiAuthority"),
        "spec": {
            "type": "object",
            "description": "The CA and its rotation.",
            "required": ["secretName"],
            "additionalProperties": False,
            "properties": {
                "secretName": _string(
                    "kubernetes.io/tls Secret in the issuer's namespace holding the signing CA "
                    "(tls.crt, tls.key). The issuer also records a rotation's state in it.",
                    minLength=1,
                    maxLength=253,
                ),
                "generate": {
                    "type": "object",
                    "description": (
                        "Present: pkiwarden makes the CA and rotates it itself at its renewal "
                        "time; a change here applies to the next CA it makes, at the next "
                        "rotation. Absent: the platform team supplies the CA."
                    ),
                    "additionalProperties": False,
                    "properties": {
                        "commonName": _string(
                            "Subject common name of the CA. Each CA pkiwarden makes is named "
                            "this, a space and the time it was made (UTC, "
                            "YYYYMMDDhhmmssffffff), cut to 64 characters, so the CAs of "
                            "successive rotations are told apart.",
                            minLength=1,
                            maxLength=64,
                            default="pkiwarden CA",
                        ),
                        "duration": _string(
                            'Validity of each CA certificate, as a duration such as "87600h".',
                            maxLength=64,
                            default="87600h",
                            **{"x-pkiwarden-minimum": "1h"},
                        ),
                        "renewBefore": _string(
                            "How long before the CA expires to start rotating, as a duration; "
                            "less than duration and longer than any Pki's certificate, so no "
                            "leaf is cut short by its CA.",
                            maxLength=64,
                            **{"x-pkiwarden-default-fraction": ["duration", 3]},
                        ),
                        "privateKey": {
                            "type": "object",
                            "description": "The CA's private key.",
                            "additionalProperties": False,
                            "properties": {
                                "algorithm": _string(
                                    "Key algorithm.", enum=_KEY_ALGORITHMS, default="ECDSA"
                                ),
                                "size": {
                                    "type": "integer",
                                    "description": (
                                        "Key size in bits: RSA 2048, 3072 or 4096 (default "
                                        "2048); ECDSA 256 or 384 (default 256); absent for "
                                        "Ed25519."
                                    ),
                                },
                            },
                            "allOf": [
                                _key_size_rule("RSA", [2048, 3072, 4096], 2048),
                                _key_size_rule("ECDSA", [256, 384], 256),
                                _key_size_rule("Ed25519", None, None),
                            ],
                        },
                    },
                },
                "nextSecretName": _string(
                    "A kubernetes.io/tls Secret in the issuer's namespace holding the next CA, "
                    "supplied by the platform team; naming a CA other than the active one "
                    "starts a rotation to it.",
                    minLength=1,
                    maxLength=253,
                ),
                "trustDomain": _string(
                    "SPIFFE trust domain of the Pod certificates this authority signs "
                    "(signer pkiwarden.dev/<name>): their URI SAN is "
                    "spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>; a DNS name.",
                    maxLength=253,
                    default="cluster.local",
                ),
                "rotation": {
                    "type": "object",
                    "description": "How a rotation paces itself.",
                    "additionalProperties": False,
                    "properties": {
                        "trustPropagation": _string(
                            "How long a trust change is given to reach every consumer (a "
                            "mounted ConfigMap is refreshed within about a minute) before the "
                            "next phase relies on it, as a duration.",
                            maxLength=64,
                            default="1h",
                        ),
                        "reissueRate": {
                            "type": "integer",
                            "description": "Pkis re-issued per second while rotating.",
                            "minimum": 1,
                            "maximum": 10000,
                            "default": 10,
                        },
                    },
                },
            },
        },
        "status": {
            "type": "object",
            "description": "Where the CA and its rotation stand; written by the issuer.",
            "properties": {
                "phase": _string(
                    "Stable, Propagating (the next CA is being trusted everywhere), Reissuing "
                    "(it signs; Pkis are re-issued) or Retiring (the previous CA is about to "
                    "leave the trust set).",
                    enum=_PHASES,
                ),
                "phaseStartTime": _string("When the current phase began.", format="date-time"),
                "conditions": {
                    "type": "array",
                    "description": "Ready and Rotating conditions.",
                    "items": _CONDITION,
                    "maxItems": 8,
                },
                "activeCA": _CA_CERTIFICATE,
                "activeNotAfter": _string(
                    "When the active CA expires (also in activeCA).", format="date-time"
                ),
                "trusted": {
                    "type": "array",
                    "description": "The trust set: every CA a valid certificate may chain to.",
                    "items": _CA_CERTIFICATE,
                    "maxItems": 8,
                },
                "pendingPkis": {
                    "type": "integer",
                    "description": "Pkis still signed by the previous CA.",
                    "minimum": 0,
                },
                "blockedPkis": {
                    "type": "array",
                    "description": (
                        "Pkis that cannot be re-issued (first 20, namespace/name); the previous "
                        "CA stays trusted for them."
                    ),
                    "items": _string("namespace/name of one Pki.", maxLength=317),
                    "maxItems": 20,
                },
                "caEstablishedTime": _string(
                    "When the authority first had a CA. From then on a missing CA Secret is "
                    "reported and must be restored; it is never generated anew.",
                    format="date-time",
                ),
                "lastRotationRequest": _string(
                    "The last `pkiwarden ca rotate` request the issuer acted on.", maxLength=64
                ),
                "observedGeneration": {
                    "type": "integer",
                    "description": "The metadata.generation the status was computed from.",
                    "minimum": 0,
                },
            },
        },
    },
}

AUTHORITY_SPEC: Final = _props(PKI_AUTHORITY_SCHEMA, "spec")
_GENERATE: Final = _props(AUTHORITY_SPEC, "generate")
_ROTATION: Final = _props(AUTHORITY_SPEC, "rotation")

PHASES: Final[tuple[str, ...]] = tuple(_PHASES)
TRUST_ROLES: Final[tuple[str, ...]] = tuple(_ROLES)
DEFAULT_TRUST_PROPAGATION: Final[str] = _ROTATION["properties"]["trustPropagation"]["default"]
DEFAULT_REISSUE_RATE: Final[int] = _ROTATION["properties"]["reissueRate"]["default"]
DEFAULT_CA_COMMON_NAME: Final[str] = _GENERATE["properties"]["commonName"]["default"]
DEFAULT_CA_DURATION: Final[str] = _GENERATE["properties"]["duration"]["default"]
MIN_CA_DURATION: Final[str] = _GENERATE["properties"]["duration"]["x-pkiwarden-minimum"]
