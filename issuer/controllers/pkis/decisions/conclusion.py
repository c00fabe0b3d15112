"""From a verdict (and the certificate just issued, if any) to all the reconcile writes after.

One pure function says what status to write, what to tell people and when to
look again, so a table of cases tests the words users read without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from issuer.controllers.pkis.decisions.messages import (
    blocked_message,
    clamped_note,
    issued_message,
    valid_message,
)
from issuer.controllers.pkis.decisions.status import (
    CertificateFacts,
    Outcome,
    scheduled_retry,
    was_failing,
)
from issuer.controllers.pkis.decisions.verdict import Step, Trigger, Verdict, renews_at
from issuer.controllers.pkis.reporting.reasons import Reason
from issuer.runtime import issuance
from shared.certificates import parse_serial


@dataclass(frozen=True)
class PkiEvent:
    """An Event to record: a Warning for a failure reason, else Normal on the Pki.

    ``again``: an earlier run of the issuer may already have said this (it died
    before recording that it had); update that Event rather than add one.
    """

    reason: Reason
    message: str
    again: bool = False


@dataclass(frozen=True)
class Conclusion:
    outcome: Outcome  # what status says
    event: PkiEvent | None  # what people are told, if anything
    requeue_at: datetime  # when to look at the Pki again


def conclude(
    pki: Mapping[str, Any],
    verdict: Verdict,
    issued: issuance.IssuedCertificate | None,
    now: datetime,
) -> Conclusion:
    """What follows ``verdict``; for ``Step.ISSUE``, ``issued`` is the certificate just written."""
    if verdict.step is Step.FAIL:
        return _failed(pki, verdict, now)
    if verdict.step is Step.ISSUE:
        assert issued is not None, "an issuance is concluded once its certificate is written"
        return _issued(verdict, issued)
    return _still_valid(pki, verdict, now)


def _still_valid(pki: Mapping[str, Any], verdict: Verdict, now: datetime) -> Conclusion:
    assert verdict.stored is not None and verdict.desired is not None
    renewal = verdict.requeue_at or now
    facts = CertificateFacts.stored(verdict.desired.secret_name, verdict.stored.facts, renewal)
    outcome = Outcome(True, Reason.ISSUED.value, valid_message(facts), facts)
    status = pki.get("status") or {}
    event = None
    if parse_serial(status.get("serialNumber")) != parse_serial(facts.serial):
        # Issued, but the process died before status recorded it (and so,
        # possibly, before the Event): tell now. Status is written after the
        # Event, so this happens at most once more per issuance.
        event = PkiEvent(Reason.ISSUED, issued_message(facts, None), again=True)
    elif was_failing(status) or not _ready(status):
        # The cause went away (a policy restored) while the certificate stayed valid:
        # those told of the failure are told it is over.
        event = PkiEvent(Reason.ISSUED, valid_message(facts))
    return Conclusion(outcome, event, renewal)


def _ready(status: Mapping[str, Any]) -> bool:
    """Ready=True in ``status``; also True when there are no conditions yet (nothing to undo)."""
    return not any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "False"
        for c in status.get("conditions") or []
    )


def _issued(verdict: Verdict, issued: issuance.IssuedCertificate) -> Conclusion:
    assert verdict.desired is not None
    certificate = issued.certificate
    renewal = renews_at(
        certificate.not_valid_before_utc,
        certificate.not_valid_after_utc,
        verdict.desired.renew_before,
    )
    facts = CertificateFacts.of(verdict.desired.secret_name, issued.certificate, renewal)
    reason = Reason.RENEWED if verdict.why is Trigger.RENEWAL_DUE else Reason.ISSUED
    message = issued_message(facts, verdict)
    if issued.clamped:
        message += clamped_note(facts)
    outcome = Outcome(True, reason.value, message, facts, issued=True)
    return Conclusion(outcome, PkiEvent(reason, message), renewal)


def _failed(pki: Mapping[str, Any], verdict: Verdict, now: datetime) -> Conclusion:
    """A failure; the same one status records, before its retry: no attempt, nothing said."""
    assert verdict.reason is not None
    facts = None
    if verdict.stored is not None and verdict.desired is not None:
        stored = verdict.stored.facts
        renewal = renews_at(stored.not_before, stored.not_after, verdict.desired.renew_before)
        facts = CertificateFacts.stored(verdict.desired.secret_name, stored, renewal)
    message = verdict.message
    if verdict.in_force and facts is not None:
        message = blocked_message(facts, verdict.message)
    scheduled = scheduled_retry(pki, verdict.reason.value, message, now)
    retry = scheduled or verdict.requeue_at
    outcome = Outcome(
        ready=verdict.in_force,
        reason=verdict.reason.value,
        message=message,
        certificate=facts,
        pending=verdict.why,
        next_retry=retry,
        blocked=verdict.in_force,
        repeat=scheduled is not None,
    )
    # The Events say what the condition says: a Pod whose renewal is blocked reads that
    # its current certificate still serves, and until when, not only the failure.
    said = None if scheduled else PkiEvent(verdict.reason, message)
    return Conclusion(outcome, said, retry or now)
