"""Status transitions: conditions, timestamps kept when nothing flips, failure bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from issuer.controllers.pkis.decisions.status import (
    CertificateFacts,
    Outcome,
    next_status,
    status_patch,
)
from issuer.controllers.pkis.decisions.verdict import Trigger

T0 = datetime(2030, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=3)
FACTS = CertificateFacts(
    "app1-pki-tls", "AB12", T0, T0 + timedelta(days=90), T0 + timedelta(days=60)
)
ISSUED = Outcome(True, "Issued", "certificate AB12 issued", FACTS, issued=True)
UP_TO_DATE = Outcome(True, "Issued", "certificate AB12 is valid", FACTS)
NOT_ALLOWED = Outcome(
    False, "NotAllowed", "spec.serviceName: ...", FACTS, next_retry=T1 + timedelta(seconds=2)
)
CA_DOWN = Outcome(
    False, "CAUnavailable", "CA missing", None, Trigger.SECRET_MISSING, T1 + timedelta(seconds=4)
)


def _pki(status: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": "p", "generation": generation}, "status": status or {}}


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_first_issuance_fills_every_field() -> None:
    status = next_status(_pki(), ISSUED, T0)
    ready, issuing = _conditions(status)["Ready"], _conditions(status)["Issuing"]
    assert ready == {
        "type": "Ready",
        "status": "True",
        "reason": "Issued",
        "message": "certificate AB12 issued",
        "lastTransitionTime": "2030-01-01T00:00:00Z",
        "observedGeneration": 1,
    }
    assert issuing["status"] == "False" and issuing["reason"] == "UpToDate"
    assert status["secretName"] == "app1-pki-tls"
    assert status["serialNumber"] == "AB12"
    assert status["notBefore"] == "2030-01-01T00:00:00Z"
    assert status["notAfter"] == "2030-04-01T00:00:00Z"
    assert status["renewalTime"] == "2030-03-02T00:00:00Z"
    assert status["observedGeneration"] == 1
    assert status["failedIssuanceAttempts"] == 0


def test_unchanged_outcome_gives_identical_status_and_no_patch() -> None:
    first = next_status(_pki(), ISSUED, T0)
    again = next_status(_pki(first), UP_TO_DATE, T1)
    assert again == first  # Ready keeps the words of the issuance and its transition time
    assert status_patch(first, again) is None


def test_failure_flips_ready_and_counts_attempts() -> None:
    ready = next_status(_pki(), ISSUED, T0)
    failed = next_status(_pki(ready), NOT_ALLOWED, T1)
    conditions = _conditions(failed)
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "NotAllowed"
    assert conditions["Ready"]["lastTransitionTime"] == "2030-01-01T00:03:00Z"
    assert conditions["Issuing"]["status"] == "False"  # nothing to issue: the policy says no
    assert failed["failedIssuanceAttempts"] == 1
    assert failed["lastFailureTime"] == "2030-01-01T00:03:00Z"
    assert failed["nextRetryTime"] == "2030-01-01T00:03:02Z"
    again = next_status(_pki(failed), NOT_ALLOWED, T1 + timedelta(seconds=2))
    assert again["failedIssuanceAttempts"] == 2
    assert _conditions(again)["Ready"]["lastTransitionTime"] == "2030-01-01T00:03:00Z"


def test_pending_issuance_shows_issuing_true_with_the_trigger() -> None:
    failed = next_status(_pki(), CA_DOWN, T1)
    issuing = _conditions(failed)["Issuing"]
    assert (issuing["status"], issuing["reason"]) == ("True", "SecretMissing")
    assert "next attempt at 2030-01-01T00:03:04Z" in issuing["message"]
    assert "serialNumber" not in failed  # no certificate in the Secret: none shown


def test_recovery_clears_failure_fields_in_the_patch() -> None:
    failed = next_status(_pki(), CA_DOWN, T0)
    recovered = next_status(_pki(failed), ISSUED, T1)
    patch = status_patch(failed, recovered)
    assert patch is not None
    assert patch["lastFailureTime"] is None and patch["nextRetryTime"] is None
    assert patch["failedIssuanceAttempts"] == 0
    assert _conditions(recovered)["Ready"]["lastTransitionTime"] == "2030-01-01T00:03:00Z"


def test_new_generation_restarts_the_attempt_count() -> None:
    failed = next_status(_pki(), NOT_ALLOWED, T0)
    failed = next_status(_pki(failed), NOT_ALLOWED, T0)
    assert failed["failedIssuanceAttempts"] == 2
    newer = next_status(_pki(failed, generation=2), NOT_ALLOWED, T1)
    assert newer["failedIssuanceAttempts"] == 1
    assert newer["observedGeneration"] == 2
    assert _conditions(newer)["Ready"]["observedGeneration"] == 2
