"""What the issuer says about a certificate, in the words of the Events and the Ready condition."""

from __future__ import annotations

from issuer.controllers.pkis.decisions.status import CertificateFacts
from issuer.controllers.pkis.decisions.verdict import Trigger, Verdict
from issuer.controllers.pkis.reporting.pod_warnings import BLOCKED
from shared.clock import rfc3339
from shared.validation.pki import onboarding_fix

MAX_MESSAGE = 1024  # the API server's limit for an Event note and a condition message
_QUOTA_REFUSAL = "exceeded quota"  # kube-apiserver's ResourceQuota admission, in its message


def valid_message(facts: CertificateFacts) -> str:
    return (
        f"certificate {facts.serial} in Secret {facts.secret_name} is valid until"
        f" {rfc3339(facts.not_after)}; renewal at {rfc3339(facts.renewal_time)}"
    )


def blocked_message(facts: CertificateFacts, failure: str) -> str:
    """Ready, but the next certificate cannot be issued: the fact first, then why."""
    return (
        f"certificate {facts.serial} in Secret {facts.secret_name} is valid until"
        f" {rfc3339(facts.not_after)}{BLOCKED}{failure}"
    )


def issued_message(facts: CertificateFacts, verdict: Verdict | None) -> str:
    """``issued``, ``renewed`` or ``re-issued (why)``; None: announced again after a restart."""
    trigger = verdict.why if verdict is not None else None
    detail = verdict.detail if verdict is not None else ""
    how = {
        Trigger.NEW: "issued",
        Trigger.RENEWAL_DUE: "renewed",
    }.get(trigger or Trigger.NEW, f"re-issued ({detail})")
    return (
        f"certificate {facts.serial} {how} into Secret {facts.secret_name}, valid until"
        f" {rfc3339(facts.not_after)}"
    )


def clamped_note(facts: CertificateFacts) -> str:
    return (
        f"; notAfter was cut to the CA's own notAfter {rfc3339(facts.not_after)},"
        " shorter than spec.duration"
    )


def api_refusal_message(status: int, text: str, verb: str, secret_name: str, namespace: str) -> str:
    """An API refusal worded for the application owner, who cannot see the issuer's logs.

    A ResourceQuota refuses with 403 too, but onboarding would not help: the
    quota's own words (which quota, used, limited) and the two ways out.
    """
    quota = _QUOTA_REFUSAL in text
    if status == 403 and quota:
        detail = text[text.index(_QUOTA_REFUSAL) :]
        message = (
            f"a ResourceQuota of this namespace refused to let the issuer {verb} Secret"
            f' "{secret_name}" ({detail}); delete unused Secrets or ask a cluster'
            " administrator to raise the quota"
        )
    elif status in (401, 403):
        message = (
            f'the issuer may not {verb} Secret "{secret_name}" in this namespace:'
            f" it is not onboarded for pkiwarden; {onboarding_fix(namespace)}"
        )
    else:
        message = f'the API server refused to {verb} Secret "{secret_name}": {text}'
    return message[:MAX_MESSAGE]
