"""``pkiwarden issuer run``: the process's life, in one place.

Order matters: probes first (so the kubelet sees a live process), then the
caches (reading is safe for every replica), then — only for the leader — the
workers that write. With ``--leader-elect`` the workers start only once this
process holds the Lease; losing it ends the process (as controller-runtime
does), and a graceful stop releases it so another replica takes over at once.
The runtime (caches, signers, re-issue pace, metrics, the Event recorder) is
built here once and handed to every controller.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from issuer.registry import CONTROLLERS
from issuer.runtime.caches import SharedCaches
from issuer.runtime.context import Build, Controller, Runtime
from issuer.runtime.events.recorder import EventRecorder, event_recorder
from issuer.runtime.health import HealthServer, text
from issuer.runtime.leader import LeaderElector, default_identity
from issuer.runtime.lease_poller import LeasePoller
from issuer.runtime.members import Members, member_lease_name, member_prefix
from issuer.runtime.metrics import IssuerMetrics
from issuer.runtime.metrics_tls import self_signed_context
from issuer.runtime.reissues import Reissues
from issuer.runtime.settings import Settings
from issuer.runtime.shard_election import RENEW_FRACTION, RETRY_FRACTION, ShardElection
from issuer.runtime.shard_leases import ShardLeases
from issuer.runtime.shards import LedShards, lease_name
from issuer.runtime.signers import Signers
from shared.clock import utc_now
from shared.kube.cache import WatchCache
from shared.kube.client import Kube
from shared.logs import fields
from shared.metrics_access import MetricsAccess

log = logging.getLogger("issuer")

LEASE_NAME = "pkiwarden-issuer"

# Connections held by watches: the cluster-wide caches, the CA, one Secret cache
# per application namespace. A pool smaller than workers + watches
# makes urllib3 close a worker's connection after each request, and every
# next request pays a new TLS handshake on both sides.
WATCH_CONNECTIONS = 64


def run(settings: Settings, *, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); 0 on a clean stop, 1 if never synced."""
    stop = stop or threading.Event()
    _stop_on_signals(stop)
    if settings.shards > 1 and not settings.leader_elect:
        log.error("--shards needs --leader-elect: a shard is worked by its Lease's holder")
        return 1
    kube = Kube.from_environment(
        settings.kubeconfig, pool_size=settings.workers + WATCH_CONNECTIONS
    )
    metrics = IssuerMetrics(lease=LEASE_NAME)
    recorder = event_recorder(kube, on_emitted=metrics.event_emitted)
    runtime = runtime_for(kube, settings, metrics, recorder)
    controllers = assemble(runtime)

    def synced() -> bool:
        return runtime.caches.synced() and all(c.synced() for c in controllers)

    shards = runtime.shards

    def start_writing() -> None:
        """Only the leader writes: Secrets, status, trust, rotation, Events."""
        metrics.leading(True)
        for controller in controllers:
            if controller.sharded or not shards.sharded:
                controller.start()

    writing = threading.Event()

    def shard_gained(shard: int) -> None:
        """A shard's namespaces are this replica's now: cache them, then work them.

        Cluster-wide work (the CAs) starts with shard 0.
        """
        if not runtime.caches.refill(settings.sync_timeout_seconds):
            log.warning("caches did not list again in time", extra=fields(shard=shard))
        runtime.shard_reports.open(shard)  # its progress may be reported from now on
        first = not writing.is_set()
        writing.set()
        if first:
            start_writing()
        for controller in controllers:
            if not controller.sharded and shard == 0:
                controller.start()
            elif controller.sharded and not first:
                controller.shard_gained(shard)

    elector: LeaderElector | None = None
    election: ShardElection | None = None
    member: LeaderElector | None = None
    lost = threading.Event()
    health = None
    if settings.health_port >= 0:
        health = HealthServer(settings.health_port)
        health.add_route("/healthz", lambda: text(not stop.is_set(), "alive"))
        health.add_route("/readyz", lambda: text(synced(), "synced"))
        if settings.metrics_port < 0:
            health.add_route("/metrics", metrics.response, gzip=metrics.gzip_response)
        health.start()
    secure = None
    if settings.metrics_port >= 0:
        secure = HealthServer(
            settings.metrics_port,
            tls=self_signed_context(_metrics_names(settings), utc_now()),
            guard=MetricsAccess(kube).check,
        )
        secure.add_route("/metrics", metrics.response, gzip=metrics.gzip_response)
        secure.start()
    try:
        runtime.caches.start()
        for controller in controllers:
            controller.start_watching()
        if not _wait_synced(synced, settings.sync_timeout_seconds, stop):
            if stop.is_set():
                return 0
            log.error(
                "caches did not sync: no list page came for the sync timeout;"
                " are the CRDs installed and may the issuer read them?",
                extra=fields(timeout_seconds=settings.sync_timeout_seconds),
            )
            return 1
        log.info(
            "caches synced",
            extra=fields(
                pkis=len(runtime.caches.view.pkis),
                authorities=len(runtime.caches.authorities),
                ca_secret=f"{settings.namespace}/{settings.ca_secret}",
            ),
        )
        identity = default_identity()
        duration = settings.lease_duration_seconds

        def stopped_leading() -> None:
            metrics.leading(False)
            if not stop.is_set():  # lost, not released: stop writing now, exit non-zero
                log.error("leader election lost; stopping", extra=fields(lease=LEASE_NAME))
                lost.set()
                stop.set()

        if runtime.leases is not None:
            members = Members(
                runtime.leases,
                kube,
                settings.namespace,
                member_prefix(LEASE_NAME, shards.count),
                lease_duration=duration,
                sweeps=lambda: 0 in shards.led(),  # one replica deletes dead ones' Leases
            )
            member = LeaderElector(
                kube,
                settings.namespace,
                member_lease_name(LEASE_NAME, shards.count, identity),
                identity,
                lease_duration=duration,
                renew_deadline=duration * RENEW_FRACTION,
                retry_period=duration * RETRY_FRACTION,
            )
            member.start(lambda: None, lambda: None)  # only renewed: it says we are alive
            runtime.leases.start()
            election = ShardElection(
                lambda name, **timing: LeaderElector(
                    kube, settings.namespace, name, identity, **timing
                ),
                shards,
                LEASE_NAME,
                duration,
                gained=shard_gained,
                lost=lambda shard: stopped_leading(),
                reports=runtime.shard_reports,
                members=members,
                # Its objects leave the caches (memory), as they came: by a list.
                released=lambda shard: runtime.caches.refill(settings.sync_timeout_seconds),
            )
            election.start()
        elif settings.leader_elect:
            elector = LeaderElector(
                kube,
                settings.namespace,
                LEASE_NAME,
                identity,
                lease_duration=duration,
                renew_deadline=duration * RENEW_FRACTION,
                retry_period=duration * RETRY_FRACTION,
            )
            elector.start(start_writing, stopped_leading)
        else:
            start_writing()
        stop.wait()
        log.info("stopping")
        return 1 if lost.is_set() else 0
    finally:
        for controller in reversed(controllers):
            controller.stop()
        runtime.caches.stop()
        if elector is not None:
            elector.release()  # after the workers stopped: the successor starts clean
        if election is not None:
            election.release()
        if runtime.leases is not None:
            runtime.leases.stop()
        if member is not None:
            member.release()  # last: a replica stopping no longer counts for the others
        if health is not None:
            health.stop()
        if secure is not None:
            secure.stop()


def runtime_for(
    kube: Kube,
    settings: Settings,
    metrics: IssuerMetrics,
    recorder: EventRecorder | None,
) -> Runtime:
    """The runtime every controller is built on; nothing here talks to the API server yet."""
    shards = LedShards(settings.shards)
    caches = SharedCaches(kube, settings.namespace, shards.owns if shards.sharded else None)
    signers = Signers(caches.authorities, caches.ca_secrets, settings.authority, settings.ca_secret)
    leases = shard_leases = None
    if shards.sharded:
        duration = settings.lease_duration_seconds
        leases = LeasePoller(kube, settings.namespace, retry_period=duration * RETRY_FRACTION)
        shard_leases = ShardLeases(
            leases,
            [lease_name(LEASE_NAME, shard, shards.count) for shard in range(shards.count)],
            lease_duration=duration,
        )
    return Runtime(
        kube,
        settings,
        caches,
        signers,
        Reissues(),
        metrics,
        recorder,
        shards=shards,
        shard_leases=shard_leases,
        leases=leases,
    )


def assemble(runtime: Runtime, controllers: tuple[Build, ...] = CONTROLLERS) -> list[Controller]:
    """Every registered controller, built on ``runtime``, each feeding its metrics.

    Apart from ``run`` so a test can build the registry exactly as a running
    issuer has it and read ``/metrics`` without a cluster.
    """
    return [build(runtime) for build in controllers]


def _metrics_names(settings: Settings) -> tuple[str, ...]:
    """The names of the metrics Service the ServiceMonitor scrapes through."""
    service = f"pkiwarden-issuer.{settings.namespace}"
    return ("pkiwarden-issuer", service, f"{service}.svc", "localhost")


def _wait_synced(ready: Callable[[], bool], timeout: float, stop: threading.Event) -> bool:
    """Wait while the first lists make progress; give up after ``timeout`` without a page."""
    started = time.monotonic()
    while not ready():
        if stop.is_set() or stalled(started, WatchCache.last_list_page, time.monotonic(), timeout):
            return False
        time.sleep(0.05)
    return True


def stalled(started: float, last_page: float, now: float, timeout: float) -> bool:
    """No list page for ``timeout`` seconds since the wait began (or since the last page)."""
    return now - max(started, last_page) > timeout


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
