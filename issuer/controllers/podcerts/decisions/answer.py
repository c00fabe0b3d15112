"""What to answer a PodCertificateRequest: sign it, deny it or say it failed. Pure.

The API server's rules for an answer shape the times: ``notBefore`` within
5 minutes of its clock, a lifetime of at least an hour and at most
``maxExpirationSeconds``, ``beginRefreshAt`` at least 10 minutes after
``notBefore`` and 10 minutes before ``notAfter`` (so the kubelet asks again no
sooner than 10 minutes after ``notBefore``, plus its own jitter of up to 5
minutes). A leaf never outlives its CA,
so a CA with less than an hour left makes the request fail (a run-time
problem an administrator fixes), never sign short.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from issuer.controllers.podcerts.inputs.requests import UNREADABLE_KEY, PodCertificateRequest
from issuer.runtime.settings import POD_BACKDATE, POD_REFRESH_FRACTION
from shared.findings import Category, Finding, phrase
from shared.pod_certificates import MIN_LIFETIME, requested_dns_names, spiffe_id
from shared.validation.pod_certificate import REQUEST_PATHS, Judgement

REFRESH_MARGIN = timedelta(minutes=10)


class Answer(StrEnum):
    """The terminal condition a request gets."""

    ISSUED = "Issued"
    DENIED = "Denied"  # never signable as asked
    FAILED = "Failed"  # a run-time failure


class AnswerReason(StrEnum):
    """Condition and Event reasons; the first two are the API's own words for a denial."""

    UNSUPPORTED_KEY_TYPE = "UnsupportedKeyType"
    INVALID_ANNOTATIONS = "InvalidUnverifiedUserAnnotations"
    NOT_ALLOWED = "NotAllowed"
    INVALID_SPEC = "InvalidSpec"
    CA_UNAVAILABLE = "CAUnavailable"
    ISSUED = "Issued"


@dataclass(frozen=True)
class Sign:
    """Sign ``public key`` for these names and these times."""

    dns_names: tuple[str, ...]
    uri: str
    not_before: datetime
    not_after: datetime
    begin_refresh_at: datetime


@dataclass(frozen=True)
class Refuse:
    """A Denied or Failed condition, and the same words on the Pod."""

    answer: Answer
    reason: AnswerReason
    message: str


def deny_reason(findings: tuple[Finding, ...]) -> AnswerReason:
    """The reason of the first error: the API's own words for a key type or an annotation
    pkiwarden does not take, ``NotAllowed`` for what a policy refuses."""
    first = next(f for f in findings if f.is_error)
    if first.path == REQUEST_PATHS.key_type:
        return AnswerReason.UNSUPPORTED_KEY_TYPE
    if first.category is Category.NOT_ALLOWED:  # well-formed: a policy refuses it
        return AnswerReason.NOT_ALLOWED
    if first.path.startswith(REQUEST_PATHS.annotations):
        return AnswerReason.INVALID_ANNOTATIONS
    return AnswerReason.INVALID_SPEC


def refusal_message(request: PodCertificateRequest, findings: tuple[Finding, ...]) -> str:
    """Every error on one line, phrased as a Pki's findings are (the request named)."""
    subject = f"PodCertificateRequest {request.name}"
    return "; ".join(phrase(f, subject) for f in findings if f.is_error)


def decide_answer(
    request: PodCertificateRequest,
    judgement: Judgement,
    ca_not_after: datetime | str,
    trust_domain: str,
    now: datetime,
    *,
    refresh_fraction: float = POD_REFRESH_FRACTION,
    backdate: timedelta = POD_BACKDATE,
) -> Sign | Refuse:
    """The answer to ``request``.

    ``ca_not_after``: the signing CA's notAfter, or why there is no CA that signs.
    ``refresh_fraction`` of the lifetime is when the kubelet asks again, kept
    within the API's bounds; ``notBefore`` is ``backdate`` before ``now``.
    """
    if request.public_key is None or request.ask.key_type == UNREADABLE_KEY:
        message = (
            f"{REQUEST_PATHS.key_type}: in PodCertificateRequest {request.name} holds no "
            "readable public key; the kubelet makes this field, so recreate the Pod"
        )
        return Refuse(Answer.DENIED, AnswerReason.UNSUPPORTED_KEY_TYPE, message)
    if not judgement.allowed or judgement.lifetime is None:
        findings = judgement.findings
        return Refuse(Answer.DENIED, deny_reason(findings), refusal_message(request, findings))
    if isinstance(ca_not_after, str):
        return Refuse(Answer.FAILED, AnswerReason.CA_UNAVAILABLE, ca_not_after)
    not_before = now.replace(microsecond=0) - backdate
    not_after = min(not_before + judgement.lifetime, ca_not_after.replace(microsecond=0))
    if not_after - not_before < MIN_LIFETIME:
        message = (
            f"the CA of {request.ask.signer} expires at {ca_not_after.isoformat()}, too soon "
            "for a Pod certificate of at least 1 hour; a cluster administrator must rotate "
            "it (pkiwarden ca rotate)"
        )
        return Refuse(Answer.FAILED, AnswerReason.CA_UNAVAILABLE, message)
    lifetime = not_after - not_before
    refresh = not_before + timedelta(seconds=int(lifetime.total_seconds() * refresh_fraction))
    refresh = max(not_before + REFRESH_MARGIN, min(refresh, not_after - REFRESH_MARGIN))
    return Sign(
        dns_names=requested_dns_names(request.ask.annotations),
        uri=spiffe_id(trust_domain, request.namespace, request.ask.service_account),
        not_before=not_before,
        not_after=not_after,
        begin_refresh_at=refresh,
    )
