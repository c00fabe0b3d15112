"""cert-manager's certificate series, one set per Pki, derived from the Pki cache.

They show what the cluster shows (status ``notAfter``, ``renewalTime``,
``failedIssuanceAttempts`` and the ``Ready`` condition), and a deleted Pki's
series disappear with it. They are rendered per Pki when the cache reports a
change of it, not at scrape time (see ``issuer.runtime.object_series``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from issuer.runtime.object_series import ChangeSource, Family, ObjectSeries, Sample
from issuer.runtime.packed_status import whole_status

CONDITION_VALUES = ("True", "False", "Unknown")


def certificate_series(pkis: ChangeSource) -> ObjectSeries:
    """The certificate families, kept current from the Pki cache's changes (before it starts)."""
    series = ObjectSeries(CERTIFICATE_FAMILIES, certificate_samples)
    pkis.add_listener(series.on_change)
    return series


CERTIFICATE_FAMILIES = (
    Family(
        "pkiwarden_certificate_expiration_timestamp_seconds",
        "The notAfter of the certificate issued for a Pki, as a Unix timestamp.",
    ),
    Family(
        "pkiwarden_certificate_renewal_timestamp_seconds",
        "When the issuer renews the certificate of a Pki, as a Unix timestamp.",
    ),
    Family(
        "pkiwarden_certificate_ready_status",
        "The Ready condition of a Pki: 1 for the current condition status, else 0.",
        ("condition",),
    ),
    Family(
        "pkiwarden_certificate_failed_issuance_attempts",
        "Failed issuance attempts of a Pki since its last success (status"
        " failedIssuanceAttempts), by the reason of the last failure; absent at 0.",
        ("reason",),
    ),
)
EXPIRATION, RENEWAL, READY, FAILURES = (family.name for family in CERTIFICATE_FAMILIES)


def certificate_samples(pki: Mapping[str, Any]) -> Iterator[Sample]:
    """cert-manager's certificate series of one Pki (its namespace and name are added)."""
    status = whole_status(pki.get("status")) or {}
    not_after = _parse_time(status.get("notAfter"))
    if not_after is not None:
        yield Sample(EXPIRATION, (), not_after.timestamp())
    renewal_time = _parse_time(status.get("renewalTime"))
    if renewal_time is not None:
        yield Sample(RENEWAL, (), renewal_time.timestamp())
    current = _condition(status, "Ready")
    for value in CONDITION_VALUES:
        yield Sample(READY, (value,), 1.0 if value == current else 0.0)
    attempts = _count(status.get("failedIssuanceAttempts"))
    if attempts:
        yield Sample(FAILURES, (_failure_reason(status),), float(attempts))


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _failure_reason(status: Mapping[str, Any]) -> str:
    """The reason of the last failure: the Ready condition's, which a failure always sets.

    Also while Ready stays True because a valid certificate is in place and
    only its renewal is blocked.
    """
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return str(condition.get("reason") or "Unknown")
    return "Unknown"


def _condition(status: Mapping[str, Any], kind: str) -> str:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            value = str(condition.get("status") or "Unknown")
            return value if value in CONDITION_VALUES else "Unknown"
    return "Unknown"
