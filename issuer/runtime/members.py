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

A dead (or stopped) replica's Lease stays behind unrenewed; it stops
counting at once and is deleted once unwritten for :data:`DELETE_AFTER`
Lease durations, by shard 0's holder alone, with the version it judged as a
precondition: a replica that was only paused and renews meanwhile keeps its
Lease (and one deleted anyway is created again at its next renewal).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping

import urllib3

from issuer.runtime.lease_poller import LeasePoller, SeenLease
from issuer.runtime.lease_sightings import renewed, unwritten_for
from shared.kube.client import LEASES, ApiError, Kube
from shared.logs import fields

log = logging.getLogger(__name__)

# Lease durations a membership Lease must go unwritten before it is deleted: far
# past the one after which it stops counting, so a blip never evicts a live replica.
DELETE_AFTER = 4


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


def expired_members(
    seen: Mapping[str, SeenLease], prefix: str, now: float, duration: float
) -> dict[str, str]:
    """The member Leases to delete (name -> the resourceVersion judged): unwritten for
    more than :data:`DELETE_AFTER` Lease durations, held or not."""
    return {
        name: lease.sighting.version
        for name, lease in sorted(seen.items())
        if name.startswith(prefix) and unwritten_for(lease.sighting, now) > DELETE_AFTER * duration
    }


class Members:
    """The live replicas, from the latest list; deletes dead ones' Leases while ``sweeps()``."""

    def __init__(
        self,
        leases: LeasePoller,
        kube: Kube,
        namespace: str,
        prefix: str,
        *,
        lease_duration: float,
        sweeps: Callable[[], bool] = lambda: False,
    ) -> None:
        """``sweeps()``: whether this replica deletes dead members' Leases (shard 0's holder)."""
        self._leases = leases
        self._kube = kube
        self._namespace = namespace
        self._prefix = prefix
        self._duration = lease_duration
        self._sweeps = sweeps
        leases.on_read(self.sweep)

    def live(self) -> int:
        return live_members(
            self._leases.seen(), self._prefix, self._leases.monotonic(), self._duration
        )

    def sweep(self) -> list[str]:
        """Delete the expired member Leases, if this replica is the one to; which it deleted."""
        if not self._sweeps():
            return []
        expired = expired_members(
            self._leases.seen(), self._prefix, self._leases.monotonic(), self._duration
        )
        return [
            name
            for name, version in expired.items()
            if delete_lease(self._kube, self._namespace, name, version)
        ]


def delete_lease(kube: Kube, namespace: str, name: str, version: str) -> bool:
    """Delete the Lease if still at ``version``; False if it was written (or gone) meanwhile."""
    try:
        kube.delete(
            LEASES.path(namespace, name),
            body={
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "preconditions": {"resourceVersion": version},
            },
        )
    except ApiError as error:
        if not (error.conflict or error.not_found):
            log.warning("deleting a dead replica's membership Lease failed: %s", error)
        return False
    except (urllib3.exceptions.HTTPError, OSError) as error:
        log.warning("deleting a dead replica's membership Lease failed: %s", error)
        return False
    log.info("deleted a dead replica's membership Lease", extra=fields(lease=name))
    return True
