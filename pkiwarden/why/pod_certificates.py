"""A Pod's PodCertificateRequests for pkiwarden's signers, as ``why pod/X`` shows them.

The request carries the answer in the same words as the Pod's Event (the
issuer writes one message into both), so the fix is the request's own
condition message, never composed here. Pure: requests in, facts and lines out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shared.pod_certificates import authority_of


@dataclass(frozen=True)
class PodCertificateFacts:
    request: str
    signer: str
    answer: str | None  # Issued, Denied, Failed; None while unanswered
    reason: str | None = None
    message: str | None = None
    not_after: str | None = None
    begin_refresh_at: str | None = None
    created: str | None = None

    @property
    def refused(self) -> bool:
        return self.answer in ("Denied", "Failed")


def pod_certificate_facts(
    requests: Iterable[Mapping[str, Any]], pod_name: str, pod_uid: str | None
) -> tuple[PodCertificateFacts, ...]:
    """The Pod's requests for pkiwarden signers, oldest first (the last is the current one)."""
    found = []
    for request in requests:
        spec = request.get("spec") or {}
        if spec.get("podName") != pod_name or (pod_uid and spec.get("podUID") != pod_uid):
            continue
        signer = str(spec.get("signerName") or "")
        if authority_of(signer) is None:
            continue
        status = request.get("status") or {}
        terminal: Mapping[str, Any] = next(
            (
                c
                for c in status.get("conditions") or []
                if c.get("type") in ("Issued", "Denied", "Failed") and c.get("status") == "True"
            ),
            {},
        )
        metadata = request.get("metadata") or {}
        found.append(
            PodCertificateFacts(
                request=str(metadata.get("name") or ""),
                signer=signer,
                answer=terminal.get("type"),
                reason=terminal.get("reason"),
                message=terminal.get("message"),
                not_after=status.get("notAfter"),
                begin_refresh_at=status.get("beginRefreshAt"),
                created=metadata.get("creationTimestamp"),
            )
        )
    return tuple(sorted(found, key=lambda f: (f.created or "", f.request)))


def pod_certificate_problem(facts: PodCertificateFacts) -> str | None:
    where = f"PodCertificateRequest {facts.request} ({facts.signer})"
    if facts.refused:
        return f"{where} was {facts.answer} ({facts.reason})"
    if facts.answer is None:
        return f"{where} has no answer yet; is the pkiwarden issuer running?"
    return None


def pod_certificate_fix(facts: Iterable[PodCertificateFacts]) -> str | None:
    """The message of the first refused request: field, value, what is allowed, the fix."""
    return next((f.message for f in facts if f.refused and f.message), None)


def pod_certificate_lines(facts: Iterable[PodCertificateFacts]) -> Iterator[str]:
    for f in facts:
        head = f"  PodCertificateRequest {f.request} ({f.signer}):"
        if f.answer == "Issued":
            yield f"{head} Issued, expires {f.not_after}, refreshed from {f.begin_refresh_at}"
        elif f.answer is None:
            yield f"{head} waiting for an answer since {f.created}"
        else:
            yield f"{head} {f.answer} {f.reason}: {f.message}"


def pod_certificate_json(facts: PodCertificateFacts) -> dict[str, Any]:
    return {
        "request": facts.request,
        "signer": facts.signer,
        "answer": facts.answer,
        "reason": facts.reason,
        "message": facts.message,
        "notAfter": facts.not_after,
        "beginRefreshAt": facts.begin_refresh_at,
    }
