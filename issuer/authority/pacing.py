"""Re-issue at a bounded rate: a token bucket, and the order in which Pkis go.

A rotation re-issues every Pki, and a thousand at once would hit the API
server (and every Pod reloading its certificate) in one burst; ``reissueRate``
bounds it. The bucket is a value and ``take`` is pure, so the rate is tested
without sleeping; the effect layer keeps one bucket behind a lock.
"""

from __future__ import annotations

import threading
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


class Pacer:
    """One bucket shared by the workers, with each Pki's slot remembered.

    A Pki told to wait comes back through the work queue at its slot; it must
    then go, not take a second token, or every return would push it (and all
    behind it) further back.
    """

    def __init__(self, rate: float = 10.0) -> None:
        self.rate = rate
        self._bucket = Bucket(tokens=min(rate, 1.0))
        self._slots: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def wait(self, key: str, now: datetime) -> timedelta:
        """How long ``key`` must still wait for its re-issue; zero: go now."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None:
                if now >= slot:
                    del self._slots[key]
                    return timedelta(0)
                return slot - now
            self._bucket, wait = take(self._bucket, now, self.rate)
            if wait > timedelta(0):
                self._slots[key] = now + wait
            return wait
