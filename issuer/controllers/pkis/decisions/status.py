"""The Pki's status, computed from what the reconcile found and did; no I/O.

Conditions follow the Kubernetes convention: ``lastTransitionTime`` moves only
when a condition's status flips, so ``kubectl wait`` and dashboards see real
transitions, and an unchanged outcome yields an identical status (which the
controller then does not write at all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from issuer.controllers.pkis.decisions.verdict import Trigger
from issuer.runtime.issued_facts import IssuedFacts
from shared.certificates import serial_hex
from shared.clock import parse_rfc3339, rfc3339

Status = dict[str, Any]


@dataclass(frozen=True)
class CertificateFacts:
    """The certificate now in the Secret, as status shows it."""

    secret_name: str
    serial: str
    not_before: datetime
    not_after: datetime
    renewal_time: datetime

    @classmethod
    def stored(cls, secret_name: str, facts: IssuedFacts, renewal: datetime) -> CertificateFacts:
        """From an issued Secret's facts (``issuer.runtime.issued_facts``)."""
        return cls(
            secret_name=secret_name,
            serial=serial_hex(facts.serial),
            not_before=facts.not_before,
            not_after=facts.not_after,
            renewal_time=renewal,
        )

    @classmethod
    def of(
        cls, secret_name: str, certificate: x509.Certificate, renewal: datetime
    ) -> CertificateFacts:
        return cls(
            secret_name=secret_name,
            serial=serial_hex(certificate.serial_number),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            renewal_time=renewal,
        )


@dataclass(frozen=True)
class Outcome:
    """How a reconcile ended, in the terms status needs.

    ``reason``/``message`` describe Ready. ``pending`` is the trigger still
    waiting for a certificate after a failure (drives Issuing=True).
    """

    ready: bool
    reason: str
    message: str
    certificate: CertificateFacts | None
    pending: Trigger | None = None
    next_retry: datetime | None = None
    issued: bool = False  # a certificate was written in this reconcile
    blocked: bool = False  # Ready (a valid certificate is in place) but renewal failed
    # The failure status records already, before its retry is due: not an attempt.
    repeat: bool = False


def condition(  # noqa: PLR0917 - the fields of a condition, in their usual order
    kind: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    value = "True" if status else "False"
    transition = rfc3339(now)
    if (
        previous is not None
        and previous.get("status") == value
        and previous.get("lastTransitionTime")
    ):
        transition = str(previous["lastTransitionTime"])
    result: dict[str, Any] = {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message[:1024],
        "lastTransitionTime": transition,
    }
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def _previous_conditions(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}


def next_status(pki: Mapping[str, Any], outcome: Outcome, now: datetime) -> Status:
    """The whole status after ``outcome``; equal to the current one when nothing changed."""
    previous: Mapping[str, Any] = pki.get("status") or {}
    generation = (pki.get("metadata") or {}).get("generation")
    conditions = _previous_conditions(previous)
    ready_reason, ready_message = outcome.reason, outcome.message
    old_ready = conditions.get("Ready")
    if (
        outcome.ready
        and not outcome.issued
        and not outcome.blocked
        and not was_failing(previous)
        and old_ready is not None
        and old_ready.get("status") == "True"
    ):
        # Still Ready: keep the words of the issuance that made it so.
        ready_reason = str(old_ready.get("reason") or ready_reason)
        ready_message = str(old_ready.get("message") or ready_message)
    status: Status = {
        "observedGeneration": generation,
        "conditions": [
            condition(
                "Ready", outcome.ready, ready_reason, ready_message, generation, old_ready, now
            ),
            _issuing(outcome, generation, conditions.get("Issuing"), now),
        ],
    }
    if outcome.certificate is not None:
        facts = outcome.certificate
        status.update(
            secretName=facts.secret_name,
            serialNumber=facts.serial,
            notBefore=rfc3339(facts.not_before),
            notAfter=rfc3339(facts.not_after),
            renewalTime=rfc3339(facts.renewal_time),
        )
    if outcome.ready and not outcome.blocked:
        status["failedIssuanceAttempts"] = 0
    else:
        attempts = int(previous.get("failedIssuanceAttempts") or 0)
        if previous.get("observedGeneration") != generation:
            attempts = 0
        if outcome.repeat and previous.get("lastFailureTime"):
            status["failedIssuanceAttempts"] = attempts
            status["lastFailureTime"] = previous["lastFailureTime"]
        else:
            status["failedIssuanceAttempts"] = attempts + 1
            status["lastFailureTime"] = rfc3339(now)
        if outcome.next_retry is not None:
            status["nextRetryTime"] = rfc3339(outcome.next_retry)
    if generation is None:
        del status["observedGeneration"]
    return status


def scheduled_retry(
    pki: Mapping[str, Any], reason: str, message: str, now: datetime
) -> datetime | None:
    """The retry status already announces for this very failure, while it is not due yet.

    A reconcile woken by something that does not change the outcome (another
    policy edited, a watch delivering the same objects again, an issuer
    restart) fails exactly as recorded. That is not an attempt: the count and
    the backoff stay, and the Pki is looked at again at the retry already
    announced. What does change the outcome (the cause removed, or a
    different one) is decided on its own merits at once.
    """
    status = pki.get("status") or {}
    if status.get("observedGeneration") != (pki.get("metadata") or {}).get("generation"):
        return None
    if not was_failing(status):
        return None
    ready = _previous_conditions(status).get("Ready") or {}
    if ready.get("reason") != reason or ready.get("message") != message[:1024]:
        return None
    due = parse_rfc3339(status.get("nextRetryTime"))
    return due if due is not None and now < due else None


def was_failing(status: Mapping[str, Any]) -> bool:
    """The last reconcile failed (even if a valid certificate kept the Pki Ready)."""
    try:
        return int(status.get("failedIssuanceAttempts") or 0) > 0
    except (TypeError, ValueError):
        return False


def _issuing(
    outcome: Outcome, generation: int | None, previous: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    if outcome.pending is not None:
        retry = f"; next attempt at {rfc3339(outcome.next_retry)}" if outcome.next_retry else ""
        message = f"a new certificate is needed but issuance failed ({outcome.reason}){retry}"
        return condition("Issuing", True, outcome.pending.value, message, generation, previous, now)
    if outcome.ready and not outcome.blocked:
        message = "the Secret holds a certificate matching the spec"
        return condition("Issuing", False, "UpToDate", message, generation, previous, now)
    return condition(
        "Issuing",
        False,
        outcome.reason,
        "not issuing: " + outcome.message,
        generation,
        previous,
        now,
    )


def status_patch(current: Mapping[str, Any], desired: Status) -> dict[str, Any] | None:
    """A merge patch from ``current`` to ``desired`` (None clears a field); None if equal."""
    if dict(current) == desired:
        return None
    patch: dict[str, Any] = dict(desired)
    for key in current:
        if key not in desired:
            patch[key] = None
    return patch
