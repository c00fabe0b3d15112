"""Every shard's Lease as shard 0's holder sees it: who holds it, whether it is renewed, its report.

A report is only as good as its Lease: a shard nobody holds, or whose holder
stopped renewing, may have leaves nobody counted. Renewal is judged by
:mod:`issuer.runtime.lease_sightings`, from the replica's one list of Leases
(:mod:`issuer.runtime.lease_poller`), which runs on a thread of its own so a
long pass of the authority controller never makes a live Lease look stale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from issuer.runtime.lease_poller import LeasePoller, SeenLease
from issuer.runtime.lease_sightings import renewed
from issuer.runtime.shard_reports import PROGRESS_ANNOTATION


@dataclass(frozen=True, slots=True)
class ShardLease:
    """One shard's Lease as the authority controller weighs it."""

    shard: int
    holder: str  # "" when nobody holds it (or it does not exist)
    renewed: bool
    report: str | None  # the holder's progress report; None: none written yet


def shard_leases(
    seen: Mapping[str, SeenLease], names: Sequence[str], now: float, duration: float
) -> tuple[ShardLease, ...]:
    """Shard i's Lease is ``names[i]``; one not listed is held by nobody. Pure."""
    leases = []
    for shard, name in enumerate(names):
        lease = seen.get(name)
        if lease is None:
            leases.append(ShardLease(shard, "", False, None))
            continue
        leases.append(
            ShardLease(
                shard,
                lease.holder,
                renewed(lease.sighting, now, duration),
                lease.annotations.get(PROGRESS_ANNOTATION),
            )
        )
    return tuple(leases)


class ShardLeases:
    """Every shard's Lease from the poller's latest list; :meth:`snapshot` is what a pass weighs."""

    def __init__(self, leases: LeasePoller, names: list[str], *, lease_duration: float) -> None:
        self._leases = leases
        self._names = tuple(names)
        self._duration = lease_duration
        self._last: tuple[tuple[str, str | None], ...] = ()
        self._listeners: list[Callable[[], None]] = []
        leases.on_read(self._compare)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Called when a holder or a report changes (not at every renewal)."""
        self._listeners.append(listener)

    def snapshot(self) -> tuple[ShardLease, ...]:
        return shard_leases(
            self._leases.seen(), self._names, self._leases.monotonic(), self._duration
        )

    def _compare(self) -> None:
        now = tuple((lease.holder, lease.report) for lease in self.snapshot())
        changed, self._last = now != self._last, now
        if changed:
            for listener in self._listeners:
                listener()
