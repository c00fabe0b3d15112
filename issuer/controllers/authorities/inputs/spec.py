"""A PkiAuthority's spec with its defaults, in the terms the rotation uses.

Without a PkiAuthority object (an issuer set up before the kind existed,
started with ``--ca-secret`` only), the issuer behaves as for an authority
with that ``secretName``, a supplied CA and default pacing: trust is
published, nothing rotates by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from issuer.controllers.authorities.decisions.phases import Request
from issuer.runtime import issuance
from shared.authority_schema import (
    DEFAULT_CA_COMMON_NAME,
    DEFAULT_CA_DURATION,
    DEFAULT_REISSUE_RATE,
    DEFAULT_TRUST_PROPAGATION,
)
from shared.clock import parse_rfc3339
from shared.durations import DurationError, parse_duration

ROTATE_ANNOTATION = "pkiwarden.dev/rotate"  # a request id: when `pkiwarden ca rotate` ran
ROTATE_NOW_ANNOTATION = "pkiwarden.dev/rotate-now"  # "true": the emergency path


@dataclass(frozen=True)
class Generate:
    common_name: str
    duration: timedelta
    renew_before: timedelta
    key: issuance.KeySpec


@dataclass(frozen=True)
class AuthoritySpec:
    secret_name: str
    next_secret_name: str | None = None
    generate: Generate | None = None
    trust_propagation: timedelta = timedelta(hours=1)
    reissue_rate: int = DEFAULT_REISSUE_RATE


def _duration(text: object, default: timedelta) -> timedelta:
    try:
        return parse_duration(str(text)) if isinstance(text, str) else default
    except DurationError:
        return default


def _generate(value: object) -> Generate | None:
    if not isinstance(value, Mapping):
        return None
    duration = _duration(value.get("duration"), parse_duration(DEFAULT_CA_DURATION))
    renew_before = _duration(value.get("renewBefore"), duration / 3)
    if renew_before >= duration:
        renew_before = duration / 3
    key = value.get("privateKey") or {}
    try:
        algorithm = issuance.KeyAlgorithm(key.get("algorithm", "ECDSA"))
    except ValueError:
        algorithm = issuance.KeyAlgorithm.ECDSA
    size = key.get("size") if algorithm is not issuance.KeyAlgorithm.ED25519 else None
    return Generate(
        common_name=str(value.get("commonName") or DEFAULT_CA_COMMON_NAME),
        duration=duration,
        renew_before=renew_before,
        key=issuance.KeySpec(algorithm, int(size) if isinstance(size, int) else None),
    )


def authority_spec(authority: Mapping[str, Any] | None, fallback_secret: str) -> AuthoritySpec:
    """The spec with defaults; ``fallback_secret`` when there is no PkiAuthority."""
    spec = (authority or {}).get("spec") or {}
    rotation = spec.get("rotation") or {}
    rate = rotation.get("reissueRate")
    next_name = spec.get("nextSecretName")
    return AuthoritySpec(
        secret_name=str(spec.get("secretName") or fallback_secret),
        next_secret_name=next_name if isinstance(next_name, str) and next_name else None,
        generate=_generate(spec.get("generate")),
        trust_propagation=_duration(
            rotation.get("trustPropagation"), parse_duration(DEFAULT_TRUST_PROPAGATION)
        ),
        reissue_rate=rate if isinstance(rate, int) and rate > 0 else DEFAULT_REISSUE_RATE,
    )


def rotation_request(authority: Mapping[str, Any] | None) -> Request | None:
    annotations = ((authority or {}).get("metadata") or {}).get("annotations") or {}
    request = annotations.get(ROTATE_ANNOTATION)
    if not isinstance(request, str) or not request:
        return None
    return Request(
        request, annotations.get(ROTATE_NOW_ANNOTATION) == "true", parse_rfc3339(request)
    )


def renewal_due(generate: Generate | None, active: x509.Certificate, now: datetime) -> bool:
    """A self-managed CA rotates at notAfter - renewBefore, so no leaf needs a dying CA.

    renewBefore counts at most a third of the active CA's own life: a shorter
    CA adopted from spec.nextSecretName would otherwise be due the moment it
    starts to sign, and rotate again at once.
    """
    if generate is None:
        return False
    lifetime = active.not_valid_after_utc - active.not_valid_before_utc
    return now >= active.not_valid_after_utc - min(generate.renew_before, lifetime / 3)


def new_ca(generate: Generate, now: datetime) -> tuple[x509.Certificate, issuance.PrivateKey]:
    """A fresh self-signed CA; its subject carries the time, so two CAs never share one."""
    name = f"{generate.common_name} {now:%Y%m%d%H%M%S%f}"[:64]
    return issuance.self_signed_ca(name, now, generate.duration, generate.key)
