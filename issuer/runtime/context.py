"""What the runtime hands every controller, and what a controller hands back.

As cert-manager's ``controller.Context``: one value built once per process
(``issuer.run``), given to each registered controller's ``build``; a
controller reaches other controllers' work only through it (the shared
caches, the signers, the re-issue pace), never by importing them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from issuer.runtime.caches import SharedCaches
from issuer.runtime.dependents import Dependents
from issuer.runtime.events.recorder import EventRecorder
from issuer.runtime.lease_poller import LeasePoller
from issuer.runtime.metrics import IssuerMetrics
from issuer.runtime.reissues import Reissues
from issuer.runtime.settings import Settings
from issuer.runtime.shard_leases import ShardLeases
from issuer.runtime.shard_reports import ShardReports
from issuer.runtime.shards import LedShards
from issuer.runtime.signers import Signers
from shared.clock import Clock, utc_now
from shared.kube.client import Kube


@dataclass(frozen=True)
class Runtime:
    kube: Kube
    settings: Settings
    caches: SharedCaches
    signers: Signers
    reissues: Reissues
    metrics: IssuerMetrics
    # Writes Events (aggregated, de-duplicated); None: log lines only (tests, tools).
    recorder: EventRecorder | None
    clock: Clock = utc_now
    # Certificates other than Pkis' that keep a previous CA trusted (Pod certificates).
    dependents: Dependents = field(default_factory=Dependents)
    # The shards this replica leads (``--shards``); unsharded, it owns every namespace.
    shards: LedShards = field(default_factory=lambda: LedShards(1))
    # Sharded: what this replica reports on its shards' Leases, and every shard's Lease
    # as read by shard 0's holder, from the one reader of the namespace's Leases
    # (both None unsharded).
    shard_reports: ShardReports = field(default_factory=ShardReports)
    shard_leases: ShardLeases | None = None
    leases: LeasePoller | None = None


class Controller(Protocol):
    """A controller as the runtime runs it: read first, write only once leading."""

    name: str
    # True: its work is per namespace, and a sharded replica does its shards' part (it may
    # also do cluster-wide work while it leads shard 0: ``runtime.shards.led()``).
    # False: cluster-wide work only (Pod certificates), started with shard 0.
    sharded: bool

    def start_watching(self) -> None:
        """Start what this controller alone watches (the shared caches are the runtime's)."""

    def synced(self) -> bool:
        """Its own caches hold a first list; the process is ready when every one's does."""

    def start(self) -> None:
        """Start writing: only the leader does."""

    def stop(self) -> None:
        """Stop its threads and watches; called once, whether it started or not."""

    def shard_gained(self, shard: int) -> None:
        """After ``start``, one more shard's namespaces are this replica's (caches refilled)."""


Build = Callable[[Runtime], Controller]
"""How a controller is made from the runtime: one entry in ``issuer.registry``."""
