"""Re-issue at a bounded rate: a token bucket, and the order in which Pkis go.

A rotation re-issues every Pki, and a thousand at once would hit the API
server (and every Pod reloading its certificate) in one burst; ``reissueRate``
bounds it. The bucket is a value and ``take`` is pure, so the rate is tested
without sleeping; the effect layer keeps one bucket behind a lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Bucket:
    tokens: float
    updated: datetime | None = None


def take(bucket: Bucket, now: datetime, rate: float) -> tuple[Bucket, timedelta]:
    """Take one token: the new bucket and how long to wait first (zero: go now).

    The bucket holds at most one second's worth (``rate``, at least 1), so a
    quiet spell does not save up a burst; a token not yet there is borrowed
    and the wait says when it will have been earned.
    """
    rate = max(rate, 0.001)
    capacity = max(rate, 1.0)
    elapsed = 0.0 if bucket.updated is None else (now - bucket.updated).total_seconds()
    tokens = min(capacity, bucket.tokens + max(elapsed, 0.0) * rate) - 1.0
    wait = timedelta(seconds=-tokens / rate) if tokens < 0 else timedelta(0)
    return Bucket(tokens, now), wait


@dataclass(frozen=True)
class Pending:
    """A Pki whose certificate is not signed by the active CA."""

    key: str  # namespace/name
    not_after: datetime
    blocked: bool  # its last issuance failed


def reissue_order(pending: Iterable[Pending]) -> list[str]:
    """Soonest-expiring first (they matter most), blocked ones last, then by name."""
    return [p.key for p in sorted(pending, key=lambda p: (p.blocked, p.not_after, p.key))]
