"""How many sharded replicas are alive: each renews a membership Lease of its own.

A replica that joins after the shards were taken leads none, so the shard
Leases alone cannot show it; its membership Lease does. Each replica holds
``pkiwarden-issuer-member-<N>-<digest of its identity>`` (the shard count in
the name, as in the shard Leases, so replicas started with another count are
not counted) through an ordinary elector, which renews it and releases it on
a graceful stop. They are read from the replica's one list of Leases
(:mod:`issuer.runtime.lease_poller`). A member is alive while its Lease is
held and seen renewed within the Lease duration
(:mod:`issuer.runtime.lease_sightings`).

A dead replica's Lease stays behind unrenewed and stops counting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from issuer.runtime.lease_poller import LeasePoller, SeenLease
from issuer.runtime.lease_sightings import renewed


def member_prefix(base: str, shards: int) -> str:
    return f"{base}-member-{shards}-"


def member_lease_name(base: str, shards: int, identity: str) -> str:
    """A valid Lease name for any identity (a Pod name, or host_pid_random outside a Pod)."""
    return member_prefix(base, shards) + hashlib.sha256(identity.encode()).hexdigest()[:12]


def live_members(seen: Mapping[str, SeenLease], prefix: str, now: float, duration: float) -> int:
    """How many of the member Leases (those named with ``prefix``) are held and renewed."""
    return sum(
        1
        for name, lease in seen.items()
        if name.startswith(prefix) and lease.holder and renewed(lease.sighting, now, duration)
    )


class Members:
    """The live replicas, from the poller's latest list."""

    def __init__(self, leases: LeasePoller, prefix: str, *, lease_duration: float) -> None:
        self._leases = leases
        self._prefix = prefix
        self._duration = lease_duration

    def live(self) -> int:
        return live_members(
            self._leases.seen(), self._prefix, self._leases.monotonic(), self._duration
        )
