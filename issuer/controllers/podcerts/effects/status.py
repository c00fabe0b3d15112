"""Writing the answer into a PodCertificateRequest's status: the one write per request.

``update`` on the status subresource with the resourceVersion read, so an
answer is written once: a second writer (another issuer, a restart racing the
first) gets a conflict, and the API server refuses any change to a request
that already has a terminal condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from issuer.controllers.podcerts.decisions.answer import Answer, AnswerReason, Sign
from issuer.controllers.podcerts.inputs.requests import POD_CERTIFICATE_REQUESTS
from shared.clock import rfc3339
from shared.kube.client import JSON, Kube

MAX_CONDITION_MESSAGE = 32768  # metav1.Condition's limit


def condition(answer: Answer, reason: AnswerReason, message: str, now: datetime) -> JSON:
    return {
        "type": answer.value,
        "status": "True",
        "reason": reason.value,
        "message": message[:MAX_CONDITION_MESSAGE],
        "lastTransitionTime": rfc3339(now),
    }


def issued_status(decision: Sign, chain: str, now: datetime) -> JSON:
    return {
        "conditions": [
            condition(Answer.ISSUED, AnswerReason.ISSUED, "signed by pkiwarden", now),
        ],
        "certificateChain": chain,
        "notBefore": rfc3339(decision.not_before),
        "beginRefreshAt": rfc3339(decision.begin_refresh_at),
        "notAfter": rfc3339(decision.not_after),
    }


def refused_status(answer: Answer, reason: AnswerReason, message: str, now: datetime) -> JSON:
    return {"conditions": [condition(answer, reason, message, now)]}


def write_status(kube: Kube, request: Mapping[str, Any], status: JSON) -> JSON:
    """Replace the request's status; raises ApiError (409 when someone answered first)."""
    metadata = request.get("metadata") or {}
    path = POD_CERTIFICATE_REQUESTS.path(
        str(metadata.get("namespace")), str(metadata.get("name")), sub="status"
    )
    return kube.replace(path, {**request, "status": status})
