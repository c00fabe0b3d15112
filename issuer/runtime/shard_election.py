"""One Lease per shard: the election loops of a sharded issuer, and what a gained shard needs.

Each shard has its own :class:`~issuer.runtime.leader.LeaderElector`. A replica
leading k shards is patient k times over before taking a free one
(``issuer.runtime.shards.patience``), so the shards spread over the replicas. On
gaining a shard, the caches list again with its namespaces admitted (Secrets
before Pkis) and only then is its work started; losing one ends the process,
as losing the one Lease does without sharding (another replica took it: this
one must stop writing there at once).

Giving one away is not losing it: every Lease duration a replica compares the
shards it leads with its fair share of the live members
(``issuer.runtime.shards.to_release``) and, if over, stops working one shard,
waits for its work in flight, and only then hands its Lease back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from issuer.runtime.leader import LeaderElector
from issuer.runtime.members import Members
from issuer.runtime.shard_reports import ShardReports
from issuer.runtime.shards import LedShards, lease_name, patience, to_release
from shared.logs import fields

log = logging.getLogger(__name__)

# client-go's proportions: renew deadline 10 s and retry 2 s of a 15 s Lease.
RENEW_FRACTION = 10 / 15
RETRY_FRACTION = 2 / 15


class ShardElection:
    """Campaigns for every shard; ``gained(shard)`` runs on its own thread, in order."""

    def __init__(
        self,
        elector_of: Callable[..., LeaderElector],
        shards: LedShards,
        base_name: str,
        lease_duration: float,
        *,
        gained: Callable[[int], None],
        lost: Callable[[int], None],
        reports: ShardReports | None = None,
        members: Members | None = None,
        released: Callable[[int], object] = lambda shard: None,
    ) -> None:
        """``reports``: what each shard's Lease carries while this replica holds it.
        ``members``: the live replicas, for rebalancing (None: never give a shard away);
        ``released(shard)`` runs after one was handed back."""
        self._shards = shards
        self._reports = reports or ShardReports()
        self._gained = gained
        self._lost = lost
        self._members = members
        self._released = released
        self._duration = lease_duration
        self._stopped = threading.Event()
        self._balancer: threading.Thread | None = None
        self._lock = threading.Lock()  # one gain (or hand-back) at a time
        retry = lease_duration * RETRY_FRACTION
        # One lock for all of this replica's electors, and patience counted from
        # the records they wrote: two of them cannot both take a free Lease at once
        # believing this replica leads nothing yet.
        campaign = threading.Lock()
        self.electors: list[LeaderElector] = []
        self.electors.extend(
            elector_of(
                lease_name(base_name, shard, shards.count),
                lease_duration=lease_duration,
                renew_deadline=lease_duration * RENEW_FRACTION,
                retry_period=retry,
                patience=lambda free: patience(
                    sum(e.holds for e in self.electors),
                    free=free,
                    retry_period=retry,
                    lease_duration=lease_duration,
                ),
                lock=campaign,
                annotations=lambda shard=shard: self._reports.annotations(shard),
            )
            for shard in range(shards.count)
        )

    def start(self) -> None:
        for shard, elector in enumerate(self.electors):
            elector.start(
                lambda shard=shard: self._on_gained(shard),  # type: ignore[misc]
                lambda shard=shard: self._on_lost(shard),  # type: ignore[misc]
            )
        if self._members is not None:
            self._balancer = threading.Thread(
                target=self._balance, name="shard-balance", daemon=True
            )
            self._balancer.start()

    def release(self) -> None:
        self._stopped.set()
        if self._balancer is not None:
            self._balancer.join(timeout=self._duration)
        for elector in self.electors:
            elector.release()

    def rebalance_once(self) -> int | None:
        """Hand one shard back if this replica leads more than its share; which, or None."""
        if self._members is None:
            return None
        with self._lock:
            shard = to_release(self._shards.led(), self._shards.count, self._members.live())
            if shard is None:
                return None
            log.info(
                "handing a shard back to a replica that leads fewer",
                extra=fields(
                    shard=shard, led=len(self._shards.led()), members=self._members.live()
                ),
            )
            self._reports.close(shard)
            # Stop working it first; only then may another replica start there.
            if not self._shards.release(shard, timeout=self._duration):
                log.warning("work in the shard did not end in time", extra=fields(shard=shard))
            handed = self.electors[shard].hand_back()
        if not handed:  # still ours: work it again rather than hold it idle
            log.warning("shard Lease not handed back; working it again", extra=fields(shard=shard))
            self._on_gained(shard)
            return None
        self._released(shard)
        return shard

    def _balance(self) -> None:
        while not self._stopped.wait(self._duration):
            self.rebalance_once()

    def _on_gained(self, shard: int) -> None:
        self._shards.gained(shard)
        threading.Thread(target=self._prepare, args=(shard,), name=f"shard-{shard}").start()

    def _prepare(self, shard: int) -> None:
        with self._lock:
            log.info("shard gained", extra=fields(shard=shard, shards=self._shards.count))
            self._gained(shard)

    def _on_lost(self, shard: int) -> None:
        self._reports.close(shard)
        self._shards.lost(shard)
        self._lost(shard)
