"""Sharding: which replica works which namespaces, decided by one Lease per shard.

With ``--shards N`` (N > 1) every namespace belongs to one of N shards by a
stable hash of its name, the same in every replica and every release (not
Python's ``hash``, which is salted per process). Shard ``i`` has its own
Lease, ``pkiwarden-issuer-shard-<i>-of-<N>``: whoever holds it caches and
works that shard's namespaces, and nobody else writes there. A replica that
dies stops renewing its Leases; the others take them over when they expire,
so a failover moves that replica's shards and nothing else, and each replica
holds about 1/replicas of the Pkis, Secrets and Pods in memory.

The count is in the Lease's name so that replicas started with different
counts (during a change of ``--shards``) never read one another's Leases as
their own: change the count with every replica stopped first.

Balance without a coordinator: a replica that already leads k shards is
patient k times over before it takes another. For a Lease nobody holds (at
the first start, or released by a replica stopping) that is k Lease
durations, so replicas started within one Lease duration of each other end
up with a shard each; for one that expired (its holder died) it is k times
:data:`PATIENCE_PER_SHARD` retry periods, so a dead replica's shards move to
the least loaded replica within seconds of the expiry.

Rebalancing, also without a coordinator: every replica renews a membership
Lease of its own (``issuer.runtime.members``), so each knows how many are
alive. One that leads more than its fair share (:func:`fair_share`) hands
one shard back (:func:`to_release`): it stops working it first, waits for
the work in flight there to end, then releases the Lease; the replica that
leads fewest is the least patient and takes it.

:func:`shard_of`, :func:`patience`, :func:`fair_share` and :func:`to_release`
are pure; :class:`LedShards` is the set of shards this replica leads, read
by the caches and the workers.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

# In units of the election's retry period: long enough for a replica that leads
# fewer shards to see the Lease free first and take it.
PATIENCE_PER_SHARD = 2.0


@functools.lru_cache(maxsize=4096)  # asked for every object a cache lists
def shard_of(namespace: str, shards: int) -> int:
    """The shard of ``namespace``, in 0..shards-1: the first 8 bytes of its SHA-256."""
    if shards <= 1:
        return 0
    digest = hashlib.sha256(namespace.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def lease_name(base: str, shard: int, shards: int) -> str:
    """The Lease of one shard; with one shard, the issuer's one Lease as before sharding."""
    return base if shards <= 1 else f"{base}-shard-{shard}-of-{shards}"


def patience(led: int, *, free: bool, retry_period: float, lease_duration: float) -> float:
    """How long a free (``free``) or expired Lease must stay so before a replica leading
    ``led`` shards takes it."""
    return led * (lease_duration if free else PATIENCE_PER_SHARD * retry_period)


def fair_share(shards: int, members: int) -> int:
    """The most shards one replica should lead when ``members`` replicas are alive."""
    return math.ceil(shards / max(1, members))


def to_release(led: frozenset[int], shards: int, members: int) -> int | None:
    """The shard to hand back, if this replica leads more than its fair share; else None.

    Never shard 0 while another will do: its holder also does the cluster-wide
    work (the CAs), which is better not moved for balance alone.
    """
    if len(led) <= fair_share(shards, members):
        return None
    return max(led - {0}, default=0)


class LedShards:
    """The shards this replica leads; ``owns(namespace)`` is what caches and workers ask.

    With one shard it owns everything from the start (leader election, when
    on, gates the workers as before sharding).
    """

    def __init__(self, shards: int) -> None:
        self.count = max(1, shards)
        self._led: frozenset[int] = frozenset({0}) if self.count == 1 else frozenset()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[frozenset[int]], None]] = []
        self._working: Counter[int] = Counter()  # work in flight, per shard
        self._idle = threading.Condition(self._lock)

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def owns(self, namespace: str) -> bool:
        return shard_of(namespace, self.count) in self._led

    def led(self) -> frozenset[int]:
        return self._led

    def on_change(self, listener: Callable[[frozenset[int]], None]) -> None:
        """Call ``listener(led)`` after every change of the led shards."""
        self._listeners.append(listener)

    def gained(self, shard: int) -> None:
        with self._lock:
            self._led = self._led | {shard}
            led = self._led
        for listener in self._listeners:
            listener(led)

    def lost(self, shard: int) -> None:
        with self._lock:
            self._led = self._led - {shard}
            led = self._led
        for listener in self._listeners:
            listener(led)

    @contextlib.contextmanager
    def working(self, namespace: str) -> Iterator[None]:
        """Around a piece of work in ``namespace``: :meth:`release` waits for it to end.

        The work still asks :meth:`owns` first thing: entered after a release
        began, it finds the shard gone and writes nothing.
        """
        shard = shard_of(namespace, self.count)
        with self._lock:
            self._working[shard] += 1
        try:
            yield
        finally:
            with self._lock:
                self._working[shard] -= 1
                self._idle.notify_all()

    def release(self, shard: int, timeout: float) -> bool:
        """Stop owning ``shard`` and wait for its work in flight to end; False if it did not."""
        self.lost(shard)
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._working[shard] > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True
