"""The PkiAuthority's status, computed from the CA Secret and the caches; no I/O.

As for Pkis, ``lastTransitionTime`` moves only when a condition flips, so an
unchanged situation computes an identical status and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from issuer.controllers.authorities.decisions.phases import Phase, RotationState
from issuer.controllers.authorities.decisions.trust import Role, Trusted
from issuer.runtime.ca_history import CAHistory, absent_ca_message
from shared.certificates import serial_hex
from shared.clock import rfc3339

BLOCKED_SHOWN = 20


def describe(certificate: x509.Certificate, role: Role) -> dict[str, str]:
    return {
        "serialNumber": serial_hex(certificate.serial_number),
        "subject": certificate.subject.rfc4514_string(),
        "notAfter": rfc3339(certificate.not_valid_after_utc),
        "role": role.value,
    }


@dataclass(frozen=True)
class Standing:
    """Everything the status shows, gathered by the loop."""

    state: RotationState
    trusted: tuple[Trusted, ...]  # empty when the CA is unreadable
    problem: str  # why the CA cannot sign, or ""
    message: str  # the rotation's latest step, in words
    pending: int
    blocked: Sequence[str]
    generation: int


def missing_ca_problem(
    namespace: str,
    secret_name: str,
    authority: str,
    *,
    generates: bool,
    history: CAHistory,
    exists: bool,
) -> str:
    """Why the CA cannot sign when its Secret is gone or unreadable, and what happens next.

    pkiwarden never replaces a lost CA by itself, not even one it generates: a new CA
    would not verify a single certificate already issued, while a restored one does.
    An authority that never had a CA has nothing to restore: that advice is for a
    lost one only (see :mod:`issuer.runtime.ca_history`).
    """
    where = f'CA Secret "{namespace}/{secret_name}"'
    if history is not CAHistory.ESTABLISHED:
        if not exists:
            return absent_ca_message(history, authority, namespace, secret_name)
        instead = ", or delete it so that pkiwarden generates one" if generates else ""
        return (
            f'{where} holds no readable tls.crt and tls.key, and PkiAuthority "{authority}"'
            " has no CA yet. A cluster administrator must put the CA in it (type"
            " kubernetes.io/tls with tls.crt and tls.key, and ca.crt for an intermediate)"
            f"{instead}"
        )
    also = (
        "; spec.generate makes only the next CA, at a rotation, never a lost one"
        if generates
        else ""
    )
    return (
        f"{where} is missing or holds no readable tls.crt and tls.key: no certificate is"
        f" issued or renewed until it is back{also}. Restore it from a backup (issued"
        " certificates keep verifying); or create it with a new CA (type kubernetes.io/tls,"
        " tls.crt and tls.key), after which every certificate is re-issued"
    )


def _condition(  # noqa: PLR0917 - the fields of a condition, in their usual order
    previous: Mapping[str, Mapping[str, Any]],
    kind: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    value = "True" if status else "False"
    before = previous.get(kind) or {}
    since = before.get("lastTransitionTime") if before.get("status") == value else None
    return {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message[:1024],
        "lastTransitionTime": since or rfc3339(now),
        "observedGeneration": generation,
    }


def authority_status(
    current: Mapping[str, Any], standing: Standing, now: datetime
) -> dict[str, Any]:
    previous = {
        str(c.get("type")): c for c in current.get("conditions") or [] if isinstance(c, Mapping)
    }
    state = standing.state
    rotating = state.phase is not Phase.STABLE
    status: dict[str, Any] = {
        "phase": state.phase.value,
        "conditions": [
            _condition(
                previous,
                "Ready",
                not standing.problem,
                "CAUnavailable" if standing.problem else "CAReady",
                standing.problem or "the CA can sign",
                standing.generation,
                now,
            ),
            _condition(
                previous,
                "Rotating",
                rotating,
                state.phase.value if rotating else "Stable",
                standing.message if rotating else "no rotation in progress",
                standing.generation,
                now,
            ),
        ],
        "trusted": [describe(t.certificate, t.role) for t in standing.trusted],
        "pendingPkis": standing.pending,
        "blockedPkis": list(standing.blocked[:BLOCKED_SHOWN]),
        "observedGeneration": standing.generation,
    }
    if state.phase_start is not None:
        status["phaseStartTime"] = rfc3339(state.phase_start)
    if state.handled_request:
        status["lastRotationRequest"] = state.handled_request
    active = [t for t in standing.trusted if t.role is Role.ACTIVE]
    if active:
        status["activeCA"] = describe(active[0].certificate, Role.ACTIVE)
        status["activeNotAfter"] = status["activeCA"]["notAfter"]
    # Kept while the CA is missing (activeCA and trusted are not): the one fact
    # that says a lost CA is to be restored, not generated again.
    established = current.get("caEstablishedTime") or (rfc3339(now) if active else None)
    if established:
        status["caEstablishedTime"] = established
    return status


def status_changed(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return {k: v for k, v in current.items()} != dict(desired)
