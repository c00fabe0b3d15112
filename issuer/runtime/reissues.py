"""Re-issue at a bounded rate during a CA rotation: where two controllers meet.

A rotation re-issues every Pki of its authority, and a thousand at once
would hit the API server (and every Pod reloading its certificate) in one
burst; the authority's ``reissueRate`` bounds it. The authority controller
sets the rate and asks for the re-issues (:meth:`Reissues.request`); the
controllers that re-issue (Pkis) take a slot from :meth:`Reissues.wait` and
listen for requests. Neither knows the other: both hold the runtime's
:class:`Reissues`. The bucket is a value and ``take`` is pure, so the rate is
tested without sleeping; :class:`Pacer` keeps one bucket behind a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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


RequestHandler = Callable[[str, list[str]], None]
"""Called with (authority, Pki keys in the order to re-issue them)."""


class Reissues:
    """One pacer per authority, and who is told when an authority asks for re-issues."""

    def __init__(self) -> None:
        self._pacers: dict[str, Pacer] = {}
        self._handlers: list[RequestHandler] = []
        self._lock = threading.Lock()

    def pacer(self, authority: str) -> Pacer:
        with self._lock:
            pacer = self._pacers.get(authority)
            if pacer is None:
                pacer = self._pacers[authority] = Pacer()
            return pacer

    def set_rate(self, authority: str, rate: float) -> None:
        """The authority's spec.rotation.reissueRate, as its controller last read it."""
        self.pacer(authority).rate = rate

    def wait(self, authority: str, key: str, now: datetime) -> timedelta:
        """How long ``key``'s re-issue for a new CA of ``authority`` must wait; zero: go now."""
        return self.pacer(authority).wait(key, now)

    def listen(self, handler: RequestHandler) -> None:
        """Be told of every request; add before the controllers start."""
        self._handlers.append(handler)

    def request(self, authority: str, keys: list[str]) -> None:
        """A new CA of ``authority`` signs: these Pkis are to be re-issued, in this order."""
        for handler in self._handlers:
            handler(authority, keys)
