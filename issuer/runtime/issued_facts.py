"""An issued Secret as the facts decisions read, parsed once when the watch delivers it.

The issuer caches every Secret it wrote. Kept whole, each held its
certificate chain and private key as base64 text (1.3 KB and a dict per
Secret, 13 MB at 10,000 Pkis) though every reconcile parsed them again only
to read a handful of values. The cache of issued Secrets keeps instead, under
:data:`FACTS`, what the Pki and authority decisions read: the serial (and
whether the serial annotation names it), validity, the key's algorithm and
size and whether it belongs to the certificate, a digest of the names and
usages, the issuing CA's key id and the spec hash the certificate was issued
from. The private key is not kept at all: the one decision that needs it (a
``rotationPolicy: Never`` re-issue) reads the Secret from the API server.
``ca.crt`` stays as text: the trust set is compared with it, and its one
value is shared by every Secret of a CA (interned by the cache).

Pure: :func:`parse_issued` and :func:`keep_facts` take and give plain values.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from issuer.runtime import issuance
from shared.certificates import parse_serial
from shared.kube.packing import DeflatedJSON

SERIAL_ANNOTATION = "pkiwarden.dev/serial-number"
NOT_AFTER_ANNOTATION = "pkiwarden.dev/not-after"
SPEC_HASH_ANNOTATION = "pkiwarden.dev/spec-hash"
OUR_ANNOTATIONS = frozenset({SERIAL_ANNOTATION, NOT_AFTER_ANNOTATION, SPEC_HASH_ANNOTATION})

# Where a cached issued Secret holds its facts: not an API field, so no Secret
# read from the API server (whole, with its data) is ever mistaken for one.
FACTS = sys.intern("pkiwarden.dev/issued-facts")


@dataclass(frozen=True, slots=True)
class IssuedFacts:
    """What decisions read of one issued Secret's certificate and key."""

    serial: int
    serial_recorded: bool  # the serial annotation names this certificate's serial
    spec_hash: str  # annotation: the hash of the spec it was issued from
    not_before: datetime
    not_after: datetime
    key_spec: issuance.KeySpec
    key_matches: bool  # tls.key belongs to the certificate in tls.crt
    names: str  # digest of the common name, DNS names, IP addresses and usages
    issuer_key_id: bytes | None  # the signing CA's key id (authority key identifier)


def names_digest(
    common_name: str, dns_names: Iterable[str], ip_addresses: Iterable[str], usages: Iterable[str]
) -> str:
    """One value for what a certificate says: equal exactly when all four are equal as sets."""
    canonical = json.dumps(
        [
            common_name,
            sorted(set(dns_names)),
            sorted({str(ipaddress.ip_address(ip)) for ip in ip_addresses}),
            sorted(set(usages)),
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def requested_names(request: issuance.LeafRequest) -> str:
    """:func:`names_digest` of what the spec asks for."""
    return names_digest(
        request.common_name, request.dns_names, request.ip_addresses, request.usages
    )


def certificate_names(certificate: x509.Certificate) -> str:
    """:func:`names_digest` of what the certificate says."""
    facts = issuance.facts_of(certificate)
    return names_digest(
        facts.common_name,
        facts.dns_names,
        (str(ip) for ip in facts.ip_addresses),
        facts.usages,
    )


def read_whole(
    secret: Mapping[str, Any],
) -> tuple[IssuedFacts, issuance.PrivateKey] | str:
    """A Secret read whole: its facts and its key, or words on what is wrong."""
    data = secret.get("data") or {}
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    try:
        cert_pem = issuance.secret_field(data, "tls.crt")
        key_pem = issuance.secret_field(data, "tls.key")
    except ValueError as error:
        return str(error)
    try:
        certificate = issuance.load_certificates(cert_pem)[0]
    except ValueError:
        return "tls.crt holds no readable certificate"
    try:
        key = issuance.load_key(key_pem)
    except (ValueError, TypeError):
        return "tls.key holds no readable private key"
    try:
        aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        issuer_key_id = _shared_bytes(aki.key_identifier) if aki.key_identifier else None
    except x509.ExtensionNotFound:
        issuer_key_id = None
    facts = IssuedFacts(
        serial=certificate.serial_number,
        serial_recorded=parse_serial(str(annotations.get(SERIAL_ANNOTATION, "")))
        == certificate.serial_number,
        spec_hash=str(annotations.get(SPEC_HASH_ANNOTATION, "")),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        key_spec=_shared_key_spec(issuance.key_spec_of(key)),
        key_matches=issuance.key_matches_certificate(key, certificate),
        names=certificate_names(certificate),
        issuer_key_id=issuer_key_id,
    )
    return facts, key


def parse_issued(secret: Mapping[str, Any]) -> IssuedFacts | str:
    """The facts of an issued Secret, or words on what is wrong with its data."""
    read = read_whole(secret)
    return read if isinstance(read, str) else read[0]


def keep_facts(secret: dict[str, Any]) -> dict[str, Any]:
    """The issued-Secret cache's form of a Secret: its facts instead of tls.crt and tls.key.

    Metadata stays (ownership reads the labels and owner references; a
    rewrite keeps annotations others added), but pkiwarden's own annotations
    go: the facts hold what they say.
    """
    kept = {key: value for key, value in secret.items() if key != "data"}
    data = secret.get("data") or {}
    kept["data"] = {"ca.crt": data["ca.crt"]} if "ca.crt" in data else {}
    metadata = dict(secret.get("metadata") or {})
    annotations = metadata.get("annotations")
    if isinstance(annotations, Mapping):
        others = {k: v for k, v in annotations.items() if k not in OUR_ANNOTATIONS}
        if others:
            metadata["annotations"] = others
        else:
            metadata.pop("annotations", None)
    kept["metadata"] = metadata
    kept[FACTS] = parse_issued(secret)
    return kept


def cached_facts(secret: Mapping[str, Any]) -> IssuedFacts | str | None:
    """The facts the cache put in ``secret``; None for a Secret read whole."""
    facts = secret.get(FACTS)
    return facts if isinstance(facts, IssuedFacts | str) else None


# Values every Secret of one CA (or one key kind) has: one object, not one per Secret.
_KEY_SPECS: dict[issuance.KeySpec, issuance.KeySpec] = {}
_KEY_IDS: dict[bytes, bytes] = {}


def _shared_key_spec(spec: issuance.KeySpec) -> issuance.KeySpec:
    return _KEY_SPECS.setdefault(spec, spec)


def _shared_bytes(value: bytes) -> bytes:
    if len(_KEY_IDS) > 1024:  # CAs are few; never grow without bound
        _KEY_IDS.clear()
    return _KEY_IDS.setdefault(value, value)


PackedSecret = tuple[bytes, str | None, IssuedFacts | str | None]


class PackedIssuedSecrets:
    """The issued-Secret cache's packer (``shared.kube.packing.Packer``).

    What :func:`keep_facts` leaves of a Secret takes 1.3 KB as dicts; packed,
    its metadata is deflated JSON text (``typical``: such a Secret's fields),
    and ``ca.crt`` and the facts stay as the objects they are: ``ca.crt`` is
    one string shared by every Secret of a CA, which no text of its own
    should repeat.
    """

    def __init__(self, *typical: Mapping[str, Any]) -> None:
        self._text = DeflatedJSON(*typical)

    def pack(self, secret: Mapping[str, Any]) -> PackedSecret | None:
        """None for a Secret not in :func:`keep_facts`' form: kept as it is."""
        data = secret.get("data")
        if not isinstance(data, Mapping) or set(data) - {"ca.crt"} or FACTS not in secret:
            return None
        ca = data.get("ca.crt")
        if "ca.crt" in data and not isinstance(ca, str):
            return None
        text = self._text.pack({**{k: v for k, v in secret.items() if k != FACTS}, "data": {}})
        if text is None:
            return None
        packed = (text, None if ca is None else sys.intern(ca), secret[FACTS])
        return packed if self.unpack(packed) == secret else None

    def unpack(self, packed: PackedSecret) -> dict[str, Any]:
        text, ca, facts = packed
        secret = self._text.unpack(text)
        if ca is not None:
            secret["data"]["ca.crt"] = ca
        secret[FACTS] = facts
        return secret
