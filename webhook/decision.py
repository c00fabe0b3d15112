"""The verdict on one AdmissionReview: pure, no I/O, the same answer for a dry run.

The HTTP edge (:mod:`webhook.app`) parses the body and fetches the validation
context from the caches; everything the API server (and so ``kubectl``) shows
the user is decided here:

- errors deny with HTTP-style code 403 / ``Forbidden`` and **one** message
  that lists them all, so a user fixes everything in one round;
- softer findings become admission warnings (``Warning: ...`` in kubectl) on
  allowed and denied answers alike;
- an UPDATE that leaves ``spec`` alone (labels, finalizers, status) is always
  allowed, errors included as warnings: an object must never get stuck
  because a policy changed after it was created (a finalizer must stay
  removable); the issuer reports such problems at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from shared import API_GROUP
from shared.findings import Finding, errors, phrase, warnings
from shared.impact import PolicyContext, policy_change_findings
from shared.text import clip, one_line
from shared.validation.common import message_for_denial
from shared.validation.pki import Context, validate_pki
from shared.validation.pki_authority import authority_change_findings, validate_authority
from shared.validation.pki_policy import validate_policy
from webhook.review import (
    API_VERSION,
    KIND,
    AdmissionRequest,
    AdmissionResponse,
    AdmissionReviewRequest,
    AdmissionReviewResponse,
)

# The API server drops a warning containing a control character, and once the
# warnings of one response pass 4096 characters in total it truncates each to
# 256 and drops the rest. Staying inside both limits keeps the text ours.
MAX_WARNING_CHARS = 256
MAX_WARNINGS_TOTAL_CHARS = 4096


class Kind(StrEnum):
    PKI = "Pki"
    PKI_POLICY = "PkiPolicy"
    PKI_AUTHORITY = "PkiAuthority"


class Operation(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"


def validated_kind(request: AdmissionRequest) -> Kind | None:
    """The kind this webhook judges, or None for a request it lets through untouched."""
    gvk = request["kind"]
    if gvk["group"] != API_GROUP or request["operation"] not in _OPERATIONS:
        return None
    return _KINDS.get(gvk["kind"])


_OPERATIONS = frozenset(Operation)
_KINDS = {kind.value: kind for kind in Kind}


def namespace_of(request: AdmissionRequest) -> str:
    """The namespace of the object under review (the request's, else the object's own)."""
    namespace = request.get("namespace") or ""
    if not namespace:
        obj = request.get("object")
        metadata = obj.get("metadata") if isinstance(obj, dict) else None
        value = metadata.get("namespace") if isinstance(metadata, dict) else None
        namespace = value if isinstance(value, str) else ""
    return namespace


def decide(
    review: AdmissionReviewRequest,
    context: Context | None,
    cluster: PolicyContext | None = None,
) -> AdmissionReviewResponse:
    """Answer ``review``; ``context`` is required when :func:`validated_kind` is a Pki.

    ``cluster`` (for a PkiPolicy) adds a warning naming the existing Pkis the
    change would stop allowing; without it that warning is left out.
    """
    request = review["request"]
    kind = validated_kind(request)
    if kind is None:
        return respond(request["uid"], allowed=True)
    obj = request.get("object")
    if kind is Kind.PKI:
        if context is None:
            raise ValueError("a Pki is validated against a context; none was given")
        findings = validate_pki(obj, namespace_of(request), context)
    elif kind is Kind.PKI_AUTHORITY:
        findings = validate_authority(obj)
    else:
        findings = validate_policy(obj)
    if request["operation"] == Operation.UPDATE and _spec_unchanged(request):
        return respond(request["uid"], allowed=True, warned=findings)
    if kind is Kind.PKI_AUTHORITY and request["operation"] == Operation.UPDATE:
        findings = [*findings, *authority_change_findings(request.get("oldObject"), obj)]
    policy = obj if kind is Kind.PKI_POLICY and isinstance(obj, dict) else None
    if policy is not None and cluster is not None and not errors(findings):
        findings = [*findings, *policy_change_findings(policy, cluster)]
    denial = errors(findings)
    if denial:
        return respond(
            request["uid"],
            allowed=False,
            warned=warnings(findings),
            message=message_for_denial(findings),
        )
    return respond(request["uid"], allowed=True, warned=findings)


def respond(
    uid: str,
    *,
    allowed: bool,
    warned: Sequence[Finding] = (),
    message: str = "",
    code: int = 403,
    reason: str = "Forbidden",
) -> AdmissionReviewResponse:
    """An AdmissionReview answer; a denial carries ``message`` with ``code``/``reason``."""
    response: AdmissionResponse = {"uid": uid, "allowed": allowed}
    if not allowed:
        response["status"] = {"code": code, "reason": reason, "message": message}
    lines = warning_lines(warned)
    if lines:
        response["warnings"] = lines
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def warning_lines(findings: Sequence[Finding]) -> list[str]:
    """Each finding as one line, within the API server's limits (see the constants)."""
    lines: list[str] = []
    total = 0
    for index, finding in enumerate(findings):
        line = clip(one_line(phrase(finding)), MAX_WARNING_CHARS)
        remaining = len(findings) - index
        more = f"{remaining} more warnings not shown; `pkiwarden lint` lists them all"
        if total + len(line) + len(more) > MAX_WARNINGS_TOTAL_CHARS and remaining > 1:
            lines.append(more)
            break
        lines.append(line)
        total += len(line)
    return lines


def _spec_unchanged(request: AdmissionRequest) -> bool:
    return bool(_spec(request.get("object")) == _spec(request.get("oldObject")))


def _spec(obj: Any) -> Any:
    return obj.get("spec") if isinstance(obj, dict) else None
