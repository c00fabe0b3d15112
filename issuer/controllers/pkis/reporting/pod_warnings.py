"""Who is told what, and when a failure must be said again: pure decisions.

Three moments tell a Pod about its Pki's certificate (and what a Pki's status
records of a failure lets a new issuer know whom it had told):
- a failure (every retry): the Pki and every consuming Pod get the Warning;
- a Pod appearing or changing while the Pki fails: that Pod gets the
  Warning the others already have, at once, without a new issuance attempt;
- the Pki issued again: every Pod that was told of the failure gets a
  Normal Event, so ``kubectl describe pod`` shows the resolution after the cause.

While a failure lasts its Events are written again before the API server's
Event time-to-live removes them, whatever the retry backoff: a refresh patches
count and lastTimestamp of the same Event objects, which renews their TTL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from issuer.controllers.pkis.reporting.reasons import Reason
from issuer.runtime.events.correlator import ObjectRef
from shared.clock import parse_rfc3339

BLOCKED = "; renewal is blocked: "
"""What joins a still-valid certificate's facts and the failure in the Ready message."""

REFRESH_FRACTION = 0.5
"""Refresh once half the TTL has passed: a late check or a slow write still lands in time."""


class Told(NamedTuple):
    pod: ObjectRef
    message: str  # the failure's words the Pod was given


@dataclass(frozen=True)
class Failure:
    """A Pki that is failing now, and whom its failure has been told to."""

    pki: ObjectRef
    secret_name: str
    reason: Reason
    message: str
    said_at: datetime  # when the Warnings were last written (on the Pki and the told Pods)
    told: Mapping[str, Told] = field(default_factory=dict)  # by Pod uid

    @property
    def key(self) -> tuple[str, str]:
        return (self.pki.namespace, self.pki.name)


@dataclass(frozen=True)
class Recorded:
    """A failure as a Pki's status records it: what its Warnings said, and when."""

    reason: Reason
    message: str
    at: datetime | None


def recorded_failure(pki: Mapping[str, Any]) -> Recorded | None:
    """The failure the Pki's status holds, if its last reconcile failed.

    The index of failing Pkis lives in memory; a new issuer (a restart, a new
    leader) rebuilds it from this, so the Pods told of a failure before hear
    that it is over. A failure that left a valid certificate in place shows
    in a Ready message after the certificate's facts: the Warning said only
    the part after them.
    """
    status = pki.get("status") or {}
    try:
        if int(status.get("failedIssuanceAttempts") or 0) <= 0:
            return None
    except (TypeError, ValueError):
        return None
    ready = next(
        (
            c
            for c in status.get("conditions") or []
            if isinstance(c, Mapping) and c.get("type") == "Ready"
        ),
        None,
    )
    if ready is None:
        return None
    try:
        reason = Reason(str(ready.get("reason")))
    except ValueError:
        return None
    if not reason.is_failure:
        return None
    message = str(ready.get("message") or "")
    if ready.get("status") == "True" and BLOCKED in message:
        message = message.split(BLOCKED, 1)[1]
    return Recorded(reason, message, parse_rfc3339(status.get("lastFailureTime")))


def pod_lacks_event(failure: Failure, pod_uid: str) -> bool:
    """A consuming Pod is told unless it already has this very failure's words."""
    told = failure.told.get(pod_uid)
    return told is None or told.message != failure.message


def refresh_due(failure: Failure, now: datetime, event_ttl: timedelta) -> bool:
    """True once the failure's Events are old enough to risk expiring before the next check."""
    return now - failure.said_at >= event_ttl * REFRESH_FRACTION


def refresh_check_interval(event_ttl: timedelta) -> float:
    """Seconds between looks for due refreshes: often enough to stay within the margin."""
    return max(1.0, min(event_ttl.total_seconds() / 10, 60.0))


def resolution_message(pki_name: str, issued: str) -> str:
    """What a Pod that was told of the failure reads once the certificate is back.

    ``issued`` is the Pki's own success message, which names the Secret.
    """
    return f"Pki {pki_name} is issued again: {issued}"
