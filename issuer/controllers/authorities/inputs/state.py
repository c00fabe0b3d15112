"""The CA Secret as the record of a rotation: certificates, keys and phase in one object.

Everything a rotation needs to resume lives in the one Secret that holds the
signing CA, so each move is a single write (with the resourceVersion read):
``tls.crt``/``tls.key`` sign, ``next.crt``/``next.key`` wait to sign,
``previous.crt`` is what signed before, ``ca.crt`` is the trust bundle, and
annotations say the phase. A CA may be an intermediate: ``tls.crt`` (and
``next.crt``) then hold it followed by its chain, kept as they are through
every move, and ``ca.crt`` the roots it chains to. Keys never leave the issuer's namespace; nothing
here logs or phrases key material.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from issuer.controllers.authorities.decisions.phases import Move, Phase, RotationState
from issuer.controllers.authorities.decisions.trust import Trusted, anchor, bundle_pem, trust_set
from issuer.runtime import issuance
from shared.clock import parse_rfc3339, rfc3339

PHASE_ANNOTATION = "pkiwarden.dev/rotation-phase"
PHASE_START_ANNOTATION = "pkiwarden.dev/phase-start"
PREVIOUS_TRUSTED_ANNOTATION = "pkiwarden.dev/previous-trusted"
REQUEST_ANNOTATION = "pkiwarden.dev/rotation-request"
TRUST_SYNCED_ANNOTATION = "pkiwarden.dev/trust-synced"
NEXT_CRT, NEXT_KEY, PREVIOUS_CRT, BUNDLE = "next.crt", "next.key", "previous.crt", "ca.crt"


@dataclass(frozen=True)
class NewCA:
    """A CA about to join: generated (self-signed) or supplied (maybe an intermediate)."""

    certificate: x509.Certificate
    key: issuance.PrivateKey
    chain: tuple[x509.Certificate, ...] = ()  # above the CA, below its root
    roots: tuple[x509.Certificate, ...] = ()  # what it chains to (its Secret's ca.crt)


@dataclass(frozen=True)
class Material:
    """The CA Secret's certificates and keys, parsed."""

    active: x509.Certificate
    active_key: issuance.PrivateKey
    next: x509.Certificate | None = None
    next_key: issuance.PrivateKey | None = None
    previous: x509.Certificate | None = None
    active_chain: tuple[x509.Certificate, ...] = ()
    next_chain: tuple[x509.Certificate, ...] = ()
    # Trust anchors known for these CAs: the Secret's ca.crt (and a next CA's roots).
    roots: tuple[x509.Certificate, ...] = ()

    def anchor_of(self, certificate: x509.Certificate) -> x509.Certificate:
        return anchor(certificate, (*self.active_chain, *self.next_chain), self.roots)

    def trusted(self, state: RotationState, now: datetime) -> tuple[Trusted, ...]:
        return trust_set(
            self.active,
            self.next,
            self.previous,
            previous_trusted=state.previous_trusted,
            now=now,
            anchor_of=self.anchor_of,
        )

    def adds_no_trust(self, state: RotationState, now: datetime) -> bool:
        """Next and Previous chain to the active CA's anchor: they change no consumer's trust.

        A new intermediate under the same root: trusting it ahead of signing,
        or forgetting the one before, is nothing any consumer has to load.
        """
        alone = trust_set(
            self.active, None, None, previous_trusted=False, now=now, anchor_of=self.anchor_of
        )
        return bundle_pem(alone) == bundle_pem(self.trusted(state, now))


def _field(data: Mapping[str, Any], key: str) -> bytes | None:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _certificates(data: Mapping[str, Any], key: str) -> list[x509.Certificate]:
    pem = _field(data, key)
    if pem is None:
        return []
    try:
        return issuance.load_certificates(pem)
    except ValueError:
        return []


def _certificate(data: Mapping[str, Any], key: str) -> x509.Certificate | None:
    found = _certificates(data, key)
    return found[0] if found else None


def _chain(data: Mapping[str, Any], key: str) -> tuple[x509.Certificate, ...]:
    """The certificates after the first in ``key``, without a root left in the chain."""
    return tuple(c for c in _certificates(data, key)[1:] if not issuance.is_self_signed(c))


def _key(data: Mapping[str, Any], key: str) -> issuance.PrivateKey | None:
    pem = _field(data, key)
    if pem is None:
        return None
    try:
        return issuance.load_key(pem)
    except (ValueError, TypeError):
        return None


def read_material(secret: Mapping[str, Any] | None) -> Material | None:
    """The certificates and keys, or None if the active pair is unreadable.

    Why an unreadable CA is unreadable is ``issuer.ca``'s to say (it becomes
    ``CAUnavailable`` on every Pki); a rotation simply does not move.
    """
    data = (secret or {}).get("data") or {}
    active, active_key = _certificate(data, "tls.crt"), _key(data, "tls.key")
    if active is None or active_key is None:
        return None
    next_ca, next_key = _certificate(data, NEXT_CRT), _key(data, NEXT_KEY)
    next_chain = _chain(data, NEXT_CRT)
    if next_ca is None or next_key is None:
        next_ca, next_key, next_chain = None, None, ()
    return Material(
        active,
        active_key,
        next_ca,
        next_key,
        _certificate(data, PREVIOUS_CRT),
        active_chain=_chain(data, "tls.crt"),
        next_chain=next_chain,
        roots=tuple(_certificates(data, BUNDLE)),
    )


def new_ca_of(material: Material) -> NewCA:
    """A supplied Secret's CA as the next one: with its chain and the roots it names."""
    return NewCA(material.active, material.active_key, material.active_chain, material.roots)


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def read_state(secret: Mapping[str, Any] | None, material: Material | None) -> RotationState:
    """The recorded phase; a Secret without annotations (a new or supplied CA) is Stable."""
    annotations = ((secret or {}).get("metadata") or {}).get("annotations") or {}
    try:
        phase = Phase(annotations.get(PHASE_ANNOTATION, Phase.STABLE.value))
    except ValueError:
        phase = Phase.STABLE
    return RotationState(
        phase=phase,
        phase_start=parse_rfc3339(annotations.get(PHASE_START_ANNOTATION)),
        has_next=material is not None and material.next is not None,
        has_previous=material is not None and material.previous is not None,
        previous_trusted=annotations.get(PREVIOUS_TRUSTED_ANNOTATION, "true") != "false",
        handled_request=str(annotations.get(REQUEST_ANNOTATION, "")),
        trust_synced_at=parse_rfc3339(annotations.get(TRUST_SYNCED_ANNOTATION)),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _key_pem(key: issuance.PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(certificate: x509.Certificate, *chain: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (certificate, *chain))


def render(
    secret: Mapping[str, Any], state: RotationState, material: Material, now: datetime
) -> dict[str, Any]:
    """The CA Secret holding ``material`` and ``state``, everything else kept as it was.

    ``metadata.resourceVersion`` is kept, so the write fails (409) if anyone
    changed the Secret since it was read: a move is then decided again.
    """
    body = copy.deepcopy(dict(secret))
    data: dict[str, Any] = dict(body.get("data") or {})
    data["tls.crt"] = _b64(_cert_pem(material.active, *material.active_chain))
    data["tls.key"] = _b64(_key_pem(material.active_key))
    data[BUNDLE] = _b64(bundle_pem(material.trusted(state, now)))
    for key in (NEXT_CRT, NEXT_KEY, PREVIOUS_CRT):
        data.pop(key, None)
    if material.next is not None and material.next_key is not None:
        data[NEXT_CRT] = _b64(_cert_pem(material.next, *material.next_chain))
        data[NEXT_KEY] = _b64(_key_pem(material.next_key))
    if material.previous is not None:
        data[PREVIOUS_CRT] = _b64(_cert_pem(material.previous))
    body["data"] = data
    metadata = body.setdefault("metadata", {})
    annotations = dict(metadata.get("annotations") or {})
    values = {
        PHASE_ANNOTATION: state.phase.value,
        PHASE_START_ANNOTATION: _stamp(state.phase_start),
        PREVIOUS_TRUSTED_ANNOTATION: "true" if state.previous_trusted else "false",
        REQUEST_ANNOTATION: state.handled_request or None,
        TRUST_SYNCED_ANNOTATION: _stamp(state.trust_synced_at),
    }
    for name, value in values.items():
        if value is None:
            annotations.pop(name, None)
        else:
            annotations[name] = value
    metadata["annotations"] = annotations
    return body


def material_after(
    material: Material,
    state: RotationState,
    move: Move,
    fresh: NewCA | None,
) -> Material:
    """The certificates after ``move``; ``fresh`` is the new CA a BEGIN or EMERGENCY brings.

    A CA keeps its chain through every move; the roots a new CA brings are
    known from then on (they become trust anchors through ``ca.crt``).
    """
    roots = material.roots if fresh is None else (*material.roots, *fresh.roots)

    def signing(ca: NewCA) -> Material:
        """``ca`` signs from now on; the active one becomes Previous."""
        return Material(
            ca.certificate, ca.key, previous=material.active, active_chain=ca.chain, roots=roots
        )

    if move is Move.BEGIN and fresh is not None:
        return replace(
            material,
            next=fresh.certificate,
            next_key=fresh.key,
            next_chain=fresh.chain,
            roots=roots,
        )
    waiting = (
        NewCA(material.next, material.next_key, material.next_chain)
        if material.next is not None and material.next_key is not None
        else None
    )
    if move is Move.PROMOTE and waiting is not None:
        return signing(waiting)
    if move is Move.EMERGENCY and state.phase is not Phase.REISSUING:
        if waiting is not None:
            return signing(waiting)
        if fresh is not None:
            return signing(fresh)
    if move is Move.FORGET:
        return replace(material, previous=None)
    return material
