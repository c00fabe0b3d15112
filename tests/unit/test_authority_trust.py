"""Trust set composition and re-issue pacing, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from issuer.controllers.authorities.decisions.reissue_order import Pending, reissue_order
from issuer.controllers.authorities.decisions.trust import (
    Role,
    bundle_certificates,
    bundle_pem,
    trust_set,
)
from issuer.runtime.reissues import Bucket, take
from shared.certificates import common_name, new_ec_key, self_signed_ca

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _ca(name: str, start: datetime, days: int) -> x509.Certificate:
    return self_signed_ca(common_name(name), new_ec_key(), start, days * DAY)


OLD = _ca("old", NOW - 300 * DAY, 365)
NEW = _ca("new", NOW - DAY, 365)
EXPIRED = _ca("expired", NOW - 400 * DAY, 365)


@pytest.mark.parametrize(
    ("next_ca", "previous", "previous_trusted", "expected"),
    [
        (None, None, True, [("old", Role.ACTIVE)]),
        (NEW, None, True, [("old", Role.ACTIVE), ("new", Role.NEXT)]),
        (None, NEW, True, [("old", Role.ACTIVE), ("new", Role.PREVIOUS)]),
        (None, NEW, False, [("old", Role.ACTIVE)]),
        (None, EXPIRED, True, [("old", Role.ACTIVE)]),
        (OLD, None, True, [("old", Role.ACTIVE)]),
    ],
    ids=["stable", "propagating", "reissuing", "emergency", "expired previous", "repeated"],
)
def test_trust_set(
    next_ca: x509.Certificate | None,
    previous: x509.Certificate | None,
    previous_trusted: bool,
    expected: list[tuple[str, Role]],
) -> None:
    chosen = trust_set(OLD, next_ca, previous, previous_trusted=previous_trusted, now=NOW)
    names = [
        (t.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value, t.role)
        for t in chosen
    ]
    assert names == expected


def test_bundle_bytes_do_not_change_when_roles_do() -> None:
    propagating = trust_set(OLD, NEW, None, previous_trusted=True, now=NOW)
    reissuing = trust_set(NEW, None, OLD, previous_trusted=True, now=NOW)
    assert bundle_pem(propagating) == bundle_pem(reissuing)
    assert list(bundle_certificates(bundle_pem(reissuing))) == [OLD, NEW]
    assert bundle_certificates(b"not pem") == ()


def test_bucket_lets_rate_per_second_through_and_no_more() -> None:
    bucket = Bucket(tokens=2.0)
    waits = []
    for _ in range(5):
        bucket, wait = take(bucket, NOW, rate=2)
        waits.append(wait.total_seconds())
    assert waits == [0.0, 0.0, 0.5, 1.0, 1.5]
    bucket, wait = take(bucket, NOW + timedelta(seconds=10), rate=2)
    assert wait == timedelta(0)
    assert bucket.tokens == 1.0  # refilled to one second's worth, not ten


def test_reissue_order_soonest_expiry_first_blocked_last() -> None:
    pending = [
        Pending("a/late", NOW + 9 * DAY, blocked=False),
        Pending("a/blocked", NOW + DAY, blocked=True),
        Pending("b/soon", NOW + 2 * DAY, blocked=False),
        Pending("a/soon", NOW + 2 * DAY, blocked=False),
    ]
    assert reissue_order(pending) == ["a/soon", "b/soon", "a/late", "a/blocked"]
