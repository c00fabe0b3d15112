"""Who is told what, and when a failure must be said again: pure decisions.

Three moments tell a Pod about its Pki's certificate:
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
from typing import NamedTuple

from issuer.reporting.correlator import ObjectRef
from issuer.reporting.reasons import Reason

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


def must_tell(failure: Failure, pod_uid: str) -> bool:
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
