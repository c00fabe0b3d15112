"""The Pki and PkiPolicy schemas (JSON Schema Draft 2020-12): the one source of truth.

Field names, defaults and vocabularies live here and nowhere else; the CRD
renderer, defaulting, the structural checks and the semantic rules all read
them. Static defaults use the ``default`` keyword. What a static default cannot
say is in ``x-pkiwarden-*`` annotations, which JSON Schema ignores and the CRD
renderer strips:

- ``x-pkiwarden-default``: a default computed from the object, as a template
  (``{name}``, ``{namespace}``, ``{serviceName}``, ``{dnsNames[0]}``);
- ``x-pkiwarden-default-fraction``: ``[field, divisor]``, a duration default
  that is that share of another duration field;
- ``x-pkiwarden-default-by``: ``[field, {value: default}]``, a default that
  depends on another field of the spec (the usages follow the key algorithm);
- ``x-pkiwarden-minimum`` / ``x-pkiwarden-maximum``: global duration bounds;
- ``x-pkiwarden-minimum-gap``: the least time between issuance and renewal
  (``duration - renewBefore``).

Key sizes depend on the algorithm; that is said with ``if``/``then`` (which
``jsonschema`` checks). Value rules (``enum``, ``minimum``, ``minLength``,
``minItems``, the sizes) are checked by the ``shared.validation`` modules only: the CRD
leaves them out so that the API server never answers before pkiwarden can.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared import API_GROUP_VERSION

JSON = dict[str, Any]

DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"


def _string(description: str, **extra: Any) -> JSON:
    return {"type": "string", "description": description, **extra}


def _strings(description: str, item: str, item_max: int = 253, **extra: Any) -> JSON:
    items = _string(item, maxLength=item_max)
    return {"type": "array", "description": description, "items": items, **extra}


def _timestamp(description: str) -> JSON:
    return _string(description, format="date-time")


def _kind(kind: str, description: str) -> JSON:
    """What every kind's schema opens with: its identity, and that spec is required."""
    return {
        "$schema": DRAFT,
        "$id": f"https://pkiwarden.dev/schemas/v1alpha1/{kind.lower()}.json",
        "title": kind,
        "description": description,
        "type": "object",
        "required": ["spec"],
    }


def _kind_fields(kind: str) -> JSON:
    """The fields every object of ``kind`` has before its spec."""
    return {
        "apiVersion": _string("Versioned schema of this object.", enum=[API_GROUP_VERSION]),
        "kind": _string("Kind of this object.", enum=[kind]),
        "metadata": _METADATA,
    }


def _key_size_rule(algorithm: str, sizes: list[int] | None, default: int | None) -> JSON:
    condition = {"required": ["algorithm"], "properties": {"algorithm": {"const": algorithm}}}
    if sizes is None:
        return {"if": condition, "then": {"not": {"required": ["size"]}}}
    size = {"enum": sizes, "default": default}
    return {"if": condition, "then": {"properties": {"size": size}}}


_DNS_PATTERN_DEFAULTS = [
    "{serviceName}.{namespace}.svc",
    "{serviceName}.{namespace}.svc.cluster.local",
]

_KEY_ALGORITHMS = ["ECDSA", "RSA", "Ed25519"]
_MIN_DURATION = "1h"
_MAX_DURATION = "87600h"  # the global cap: no Pki, whatever its policy, asks for more
# The least time between issuance and renewal (duration - renewBefore): below it a Pki
# would be re-issued every few seconds, a load on the issuer and the API server for nothing.
_MIN_RENEWAL_GAP = "30m"

_USAGES = [
    "server auth",
    "client auth",
    "digital signature",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "content commitment",
    "code signing",
    "email protection",
    "timestamping",
    "ocsp signing",
]

# What a PkiPolicy lets a Pki ask for when it says nothing: TLS servers and
# clients. Code signing, OCSP signing and the rest are the policy's to grant.
_DEFAULT_ALLOWED_USAGES = [
    "server auth",
    "client auth",
    "digital signature",
    "key encipherment",
    "key agreement",
]
_RSA_SIZES = [2048, 3072, 4096]
# The PkiAuthority a Pki uses when it names none, and so the one a PkiPolicy allows
# when it says nothing: a cluster with one CA never writes either field.
_DEFAULT_AUTHORITY = "default"

_KEY_USAGES = ["server auth", "digital signature"]
_DEFAULT_USAGES = {
    # Key encipherment means "the key encrypts a session key": RSA key exchange only.
    # An ECDSA or Ed25519 key cannot do it, and strict clients reject the certificate.
    "ECDSA": _KEY_USAGES,
    "RSA": [*_KEY_USAGES, "key encipherment"],
    "Ed25519": _KEY_USAGES,
}

_METADATA: JSON = {
    "type": "object",
    "description": "Standard object metadata.",
    "properties": {
        "name": _string("Name of the object."),
        "namespace": _string("Namespace of the object."),
    },
}

_CONDITION: JSON = {
    "type": "object",
    "description": "One aspect of the Pki's state.",
    "required": ["type", "status"],
    "properties": {
        "type": _string("Ready (a valid certificate is in the Secret) or Issuing.", maxLength=64),
        "status": _string("Whether the condition holds.", enum=["True", "False", "Unknown"]),
        "reason": _string("Why the condition has its status, in UpperCamelCase.", maxLength=128),
        "message": _string("What happened, for a human.", maxLength=1024),
        "lastTransitionTime": _timestamp("When the status last changed."),
        "observedGeneration": {
            "type": "integer",
            "description": "The metadata.generation the condition was computed from.",
            "minimum": 0,
        },
    },
}

PKI_SCHEMA: Final[JSON] = {
    **_kind(
        "Pki",
        (
            "A request for a TLS certificate for one Service, signed by the cluster's pkiwarden CA "
            "and written to a kubernetes.io/tls Secret in the same namespace."
        ),
    ),
    "properties": {
        **_kind_fields("Pki"),
        "spec": {
            "type": "object",
            "description": "The certificate wanted.",
            "required": ["serviceName"],
            "additionalProperties": False,
            "properties": {
                "serviceName": _string(
                    "Name of the Service the certificate is for (a DNS-1035 label). "
                    "A PkiPolicy must allow it for the namespace.",
                    minLength=1,
                    maxLength=63,
                ),
                "secretName": _string(
                    "Name of the kubernetes.io/tls Secret to write (a DNS-1123 subdomain), "
                    "unique among the Pkis of the namespace.",
                    minLength=1,
                    maxLength=253,
                    **{"x-pkiwarden-default": "{name}-tls"},
                ),
                "dnsNames": {
                    **_strings(
                        "DNS names (subject alternative names) of the certificate: lower case, "
                        'at most 253 characters, "*." only as the whole leftmost label. '
                        "Each must be allowed by the PkiPolicy that allows the serviceName. "
                        "Leave the field out for the default names; an empty list is refused.",
                        "One DNS name.",
                        minItems=1,
                        maxItems=100,
                    ),
                    "x-pkiwarden-default": _DNS_PATTERN_DEFAULTS,
                },
                "ipAddresses": _strings(
                    "IP addresses (subject alternative names) of the certificate, IPv4 or IPv6. "
                    "Each must fall in an allowedIPRanges entry of the PkiPolicy.",
                    "One IPv4 or IPv6 address.",
                    item_max=45,
                    maxItems=100,
                ),
                "commonName": _string(
                    "Subject common name, at most 64 characters; also checked against the "
                    "PkiPolicy. Added to the DNS names if it is not among them.",
                    minLength=1,
                    maxLength=64,
                    **{"x-pkiwarden-default": "{dnsNames[0]}"},
                ),
                "duration": _string(
                    'Validity of the certificate, as a duration such as "2160h" or "1h30m"; '
                    f"at least {_MIN_DURATION}, at most {_MAX_DURATION} (ten years, for every "
                    "Pki) and at most the PkiPolicy's maxDuration; a maxDuration below the "
                    "default is the default.",
                    default="2160h",
                    maxLength=64,
                    **{"x-pkiwarden-minimum": _MIN_DURATION, "x-pkiwarden-maximum": _MAX_DURATION},
                ),
                "renewBefore": _string(
                    "How long before expiry to renew, as a duration; at least 5m, and at "
                    f"least {_MIN_RENEWAL_GAP} less than duration, so a certificate is used for "
                    f"at least {_MIN_RENEWAL_GAP} before it is renewed.",
                    maxLength=64,
                    **{
                        "x-pkiwarden-default-fraction": ["duration", 3],
                        "x-pkiwarden-minimum": "5m",
                        "x-pkiwarden-minimum-gap": _MIN_RENEWAL_GAP,
                    },
                ),
                "privateKey": {
                    "type": "object",
                    "description": "The private key to generate.",
                    "additionalProperties": False,
                    "properties": {
                        "algorithm": _string(
                            "Key algorithm.", enum=_KEY_ALGORITHMS, default="ECDSA"
                        ),
                        "size": {
                            "type": "integer",
                            "description": (
                                "Key size in bits: RSA 2048, 3072 or 4096 (default 2048); "
                                "ECDSA 256 or 384 (default 256); absent for Ed25519."
                            ),
                        },
                        "rotationPolicy": _string(
                            "Always: a new key at every issuance. Never: keep the existing key.",
                            enum=["Always", "Never"],
                            default="Always",
                        ),
                    },
                    "allOf": [
                        _key_size_rule("RSA", [2048, 3072, 4096], 2048),
                        _key_size_rule("ECDSA", [256, 384], 256),
                        _key_size_rule("Ed25519", None, None),
                    ],
                },
                "usages": {
                    "type": "array",
                    "description": "Key usages and extended key usages of the certificate.",
                    "items": _string("One usage.", enum=_USAGES),
                    "minItems": 1,
                    "maxItems": len(_USAGES),
                    "x-pkiwarden-default-by": ["algorithm", _DEFAULT_USAGES],
                },
                "authority": _string(
                    "Name of the PkiAuthority that signs the certificate. It must exist and be "
                    "allowed for the namespace by the PkiPolicy's allowedAuthorities.",
                    minLength=1,
                    maxLength=253,
                    default=_DEFAULT_AUTHORITY,
                ),
            },
        },
        "status": {
            "type": "object",
            "description": "What pkiwarden last did for this Pki; written by the issuer.",
            "properties": {
                "conditions": {
                    "type": "array",
                    "description": "Ready and Issuing conditions.",
                    "items": _CONDITION,
                    "maxItems": 8,
                },
                "notBefore": _timestamp("Start of the current certificate's validity."),
                "notAfter": _timestamp("End of the current certificate's validity."),
                "renewalTime": _timestamp("When the certificate will be renewed."),
                "serialNumber": _string("Serial number of the current certificate, in hex."),
                "secretName": _string("Secret that holds the current certificate."),
                "lastFailureTime": _timestamp("When issuance last failed."),
                "failedIssuanceAttempts": {
                    "type": "integer",
                    "description": "Failed issuances since the last success.",
                    "minimum": 0,
                },
                "nextRetryTime": _timestamp("When issuance will be retried after a failure."),
                "observedGeneration": {
                    "type": "integer",
                    "description": "The metadata.generation the status was computed from.",
                    "minimum": 0,
                },
            },
        },
    },
}

_SELECTOR: JSON = {
    "type": "object",
    "description": (
        "Label selector for namespaces: every matchLabels entry and every matchExpressions "
        "requirement must hold."
    ),
    "additionalProperties": False,
    "properties": {
        "matchLabels": {
            "type": "object",
            "description": "Labels the namespace must have, with these values.",
            "additionalProperties": _string("Label value."),
        },
        "matchExpressions": {
            "type": "array",
            "description": "Requirements on namespace labels.",
            "items": {
                "type": "object",
                "description": "One requirement: key, operator and, for In/NotIn, values.",
                "required": ["key", "operator"],
                "additionalProperties": False,
                "properties": {
                    "key": _string("Label key."),
                    "operator": _string(
                        "How the label's value relates to values.",
                        enum=["In", "NotIn", "Exists", "DoesNotExist"],
                    ),
                    "values": _strings(
                        "Values for In and NotIn; empty for Exists and DoesNotExist.",
                        "One label value.",
                        item_max=63,
                    ),
                },
            },
        },
    },
}

PKI_POLICY_SCHEMA: Final[JSON] = {
    **_kind(
        "PkiPolicy",
        (
            "Which namespaces may request certificates for which names. A Pki is allowed when one "
            "PkiPolicy that selects its namespace allows all of it."
        ),
    ),
    "properties": {
        **_kind_fields("PkiPolicy"),
        "spec": {
            "type": "object",
            "description": (
                "What the selected namespaces may ask for. namespaces and namespaceSelector "
                "(at least one) select the namespaces; both together select the union."
            ),
            "required": ["allowedServiceNames"],
            "additionalProperties": False,
            "properties": {
                "namespaces": _strings(
                    "Namespaces selected by name.", "One namespace name.", minItems=1
                ),
                "namespaceSelector": _SELECTOR,
                "allowedServiceNames": _strings(
                    "Exact service names a Pki may name in spec.serviceName.",
                    "One service name.",
                    minItems=1,
                ),
                "allowedDNSNames": _strings(
                    "DNS name patterns. {serviceName} and {namespace} expand to the Pki's; "
                    'a leading "*." matches exactly one label, which may itself be "*".',
                    "One DNS name pattern.",
                    minItems=1,
                    default=_DNS_PATTERN_DEFAULTS,
                ),
                "allowedIPRanges": _strings(
                    "CIDRs that every IP address of a Pki must fall in. Omitted: no IP addresses.",
                    "One CIDR, such as 10.0.0.0/8.",
                    minItems=1,
                ),
                "maxDuration": _string(
                    "Longest certificate duration allowed, such as 2160h. Omitted: only the "
                    f"global bound, {_MAX_DURATION}, which also caps any longer maxDuration.",
                    maxLength=64,
                ),
                "allowedKeyAlgorithms": {
                    "type": "array",
                    "description": "Key algorithms allowed. Omitted: all.",
                    "items": _string("One key algorithm.", enum=_KEY_ALGORITHMS),
                    "minItems": 1,
                    "default": _KEY_ALGORITHMS,
                },
                "minRSASize": {
                    "type": "integer",
                    "description": "Smallest RSA key size, in bits, a Pki may ask for.",
                    "enum": _RSA_SIZES,
                    "default": _RSA_SIZES[0],
                },
                "allowedUsages": {
                    "type": "array",
                    "description": (
                        "Usages a Pki may ask for in spec.usages. Omitted: "
                        + ", ".join(_DEFAULT_ALLOWED_USAGES)
                        + "."
                    ),
                    "items": _string("One usage.", enum=_USAGES),
                    "minItems": 1,
                    "maxItems": len(_USAGES),
                    "default": _DEFAULT_ALLOWED_USAGES,
                },
                "allowedAuthorities": _strings(
                    "PkiAuthorities a Pki (or a Pod certificate) in the selected namespaces may "
                    "name in spec.authority.",
                    "One PkiAuthority name.",
                    minItems=1,
                    default=[_DEFAULT_AUTHORITY],
                ),
            },
        },
    },
}


def _props(schema: Mapping[str, Any], *path: str) -> JSON:
    node: Any = schema
    for name in path:
        node = node["properties"][name]
    result: JSON = node
    return result


PKI_SPEC: Final = _props(PKI_SCHEMA, "spec")
POLICY_SPEC: Final = _props(PKI_POLICY_SCHEMA, "spec")
_PRIVATE_KEY: Final = _props(PKI_SPEC, "privateKey")

KEY_ALGORITHMS: Final[tuple[str, ...]] = tuple(_props(_PRIVATE_KEY, "algorithm")["enum"])
ROTATION_POLICIES: Final[tuple[str, ...]] = tuple(_props(_PRIVATE_KEY, "rotationPolicy")["enum"])
USAGES: Final[tuple[str, ...]] = tuple(PKI_SPEC["properties"]["usages"]["items"]["enum"])
SELECTOR_OPERATORS: Final[tuple[str, ...]] = tuple(
    _SELECTOR["properties"]["matchExpressions"]["items"]["properties"]["operator"]["enum"]
)


def _key_sizes() -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    sizes: dict[str, tuple[int, ...]] = {}
    defaults: dict[str, int] = {}
    for rule in _PRIVATE_KEY["allOf"]:
        algorithm = rule["if"]["properties"]["algorithm"]["const"]
        size = rule["then"].get("properties", {}).get("size", {})
        sizes[algorithm] = tuple(size.get("enum", ()))
        if "default" in size:
            defaults[algorithm] = size["default"]
    return sizes, defaults


KEY_SIZES, DEFAULT_KEY_SIZES = _key_sizes()
"""Allowed sizes per algorithm (empty: the size must be omitted), and the default size."""

MIN_DURATION: Final[str] = PKI_SPEC["properties"]["duration"]["x-pkiwarden-minimum"]
DEFAULT_DURATION: Final[str] = PKI_SPEC["properties"]["duration"]["default"]
MAX_DURATION: Final[str] = PKI_SPEC["properties"]["duration"]["x-pkiwarden-maximum"]
MIN_RENEW_BEFORE: Final[str] = PKI_SPEC["properties"]["renewBefore"]["x-pkiwarden-minimum"]
MIN_RENEWAL_GAP: Final[str] = PKI_SPEC["properties"]["renewBefore"]["x-pkiwarden-minimum-gap"]
"""The least time between a certificate's issuance and its renewal (duration - renewBefore)."""
DEFAULT_USAGES: Final[dict[str, tuple[str, ...]]] = {
    algorithm: tuple(usages)
    for algorithm, usages in PKI_SPEC["properties"]["usages"]["x-pkiwarden-default-by"][1].items()
}
"""Default usages per key algorithm."""
DEFAULT_ALLOWED_USAGES: Final[tuple[str, ...]] = tuple(
    POLICY_SPEC["properties"]["allowedUsages"]["default"]
)
"""The usages a PkiPolicy allows when it does not say."""
DEFAULT_MIN_RSA_SIZE: Final[int] = POLICY_SPEC["properties"]["minRSASize"]["default"]
DEFAULT_AUTHORITY: Final[str] = PKI_SPEC["properties"]["authority"]["default"]
"""The PkiAuthority a Pki uses when its spec.authority is left out."""
DEFAULT_ALLOWED_AUTHORITIES: Final[tuple[str, ...]] = tuple(
    POLICY_SPEC["properties"]["allowedAuthorities"]["default"]
)
"""The PkiAuthorities a PkiPolicy allows when it does not say."""
DEFAULT_DNS_PATTERNS: Final[tuple[str, ...]] = tuple(
    POLICY_SPEC["properties"]["allowedDNSNames"]["default"]
)
DNS_PATTERN_PLACEHOLDERS: Final[tuple[str, ...]] = ("serviceName", "namespace")
"""What ``{...}`` may name in a PkiPolicy's allowedDNSNames."""
