"""``pkiwarden issuer run``: the process's life, in one place.

Order matters: probes first (so the kubelet sees a live process), then the
caches (reading is safe for every replica), then — only for the leader — the
workers that write. With ``--leader-elect`` the workers start only once this
process holds the Lease; losing it ends the process (as controller-runtime
does), and a graceful stop releases it so another replica takes over at once.
Events (on the Pki and its consuming Pods) and metrics are wired here too.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from issuer.authority.attach import attach_authority
from issuer.authority.loop import AuthorityLoop
from issuer.controller import Controller
from issuer.health import HealthServer, text
from issuer.leader import LeaderElector, default_identity
from issuer.metrics import IssuerMetrics
from issuer.metrics_tls import self_signed_context
from issuer.reporting.event_reporter import EventReporter, PodWatch, event_reporter
from issuer.reporting.reporter import FanOut, LoggingReporter, Reporter
from issuer.settings import Settings
from issuer.shard_election import RENEW_FRACTION, RETRY_FRACTION, ShardElection
from issuer.shards import LedShards, shard_of
from shared.clock import utc_now
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


def run(
    settings: Settings,
    *,
    reporter: Reporter | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); 0 on a clean stop, 1 if never synced."""
    stop = stop or threading.Event()
    _stop_on_signals(stop)
    if settings.shards > 1 and not settings.leader_elect:
        log.error("--shards needs --leader-elect: a shard is worked by its Lease's holder")
        return 1
    shards = LedShards(settings.shards)
    admit = shards.owns if shards.sharded else None
    kube = Kube.from_environment(
        settings.kubeconfig, pool_size=settings.workers + WATCH_CONNECTIONS
    )
    metrics = IssuerMetrics(lease=LEASE_NAME)
    pod_watch: PodWatch | None = None
    events: EventReporter | None = None
    if reporter is None:
        events, pod_watch = event_reporter(
            kube, event_ttl=settings.event_ttl, on_emitted=metrics.event_emitted, admit=admit
        )
        reporter = FanOut([LoggingReporter(), events])
    controller, authority = assemble(kube, settings, reporter, metrics, owns=admit)

    def synced() -> bool:
        return controller.synced() and authority.synced()

    def start_writing() -> None:
        """Only the leader writes: Secrets and status (the workers), the authority's
        trust and rotation, Events (and the Pod watch)."""
        metrics.leading(True)
        if events is not None:  # before any reconcile can resolve a failure
            recalled = events.recall(controller.view.pkis.list())
            log.info("failing Pkis recalled from status", extra=fields(pkis=recalled))
        controller.start_workers()
        if not shards.sharded:
            authority.start()
        if pod_watch is not None and events is not None:
            pod_watch.start(events)

    writing = threading.Event()

    def shard_gained(shard: int) -> None:
        """A shard's namespaces are this replica's now: cache them, then work them.

        The authority loop (the CA, its trust and rotation) is one for the
        cluster: it runs with shard 0.
        """
        if not controller.watches.refill(settings.sync_timeout_seconds):
            log.warning("caches did not list again in time", extra=fields(shard=shard))
        if not writing.is_set():
            writing.set()
            start_writing()
        else:
            if pod_watch is not None:
                pod_watch.cache.relist()
            if events is not None:
                gained = [
                    pki
                    for pki in controller.view.pkis.list()
                    if shard_of(str((pki.get("metadata") or {}).get("namespace")), shards.count)
                    == shard
                ]
                events.recall(gained)
        if shard == 0:
            authority.start()

    elector: LeaderElector | None = None
    election: ShardElection | None = None
    lost = threading.Event()
    health = None
    if settings.health_port >= 0:
        health = HealthServer(settings.health_port)
        health.add_route("/healthz", lambda: text(not stop.is_set(), "alive"))
        health.add_route("/readyz", lambda: text(synced(), "synced"))
        if settings.metrics_port < 0:
            health.add_route("/metrics", metrics.response)
        health.start()
    secure = None
    if settings.metrics_port >= 0:
        secure = HealthServer(
            settings.metrics_port,
            tls=self_signed_context(_metrics_names(settings), utc_now()),
            guard=MetricsAccess(kube).check,
        )
        secure.add_route("/metrics", metrics.response)
        secure.start()
    try:
        controller.start_watching()
        authority.start_watching()
        if not controller.wait_synced(settings.sync_timeout_seconds) or not _wait(
            authority.synced, settings.sync_timeout_seconds, stop
        ):
            if stop.is_set():
                return 0
            log.error(
                "caches did not sync; are the CRDs installed and may the issuer read them?",
                extra=fields(timeout_seconds=settings.sync_timeout_seconds),
            )
            return 1
        log.info(
            "caches synced",
            extra=fields(
                pkis=len(controller.view.pkis),
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

        if shards.sharded:
            election = ShardElection(
                lambda name, **timing: LeaderElector(
                    kube, settings.namespace, name, identity, **timing
                ),
                shards,
                LEASE_NAME,
                duration,
                gained=shard_gained,
                lost=lambda shard: stopped_leading(),
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
        if pod_watch is not None:
            pod_watch.stop()
        authority.stop()
        controller.stop()
        if elector is not None:
            elector.release()  # after the workers stopped: the successor starts clean
        if election is not None:
            election.release()
        if health is not None:
            health.stop()
        if secure is not None:
            secure.stop()


def assemble(
    kube: Kube,
    settings: Settings,
    reporter: Reporter,
    metrics: IssuerMetrics,
    *,
    owns: Callable[[str], bool] | None = None,
) -> tuple[Controller, AuthorityLoop]:
    """The Pki reconciler and the CA's loop beside it, each feeding ``metrics``.

    Apart from ``run`` so a test can build the registry exactly as a running
    issuer has it and read ``/metrics`` without a cluster: nothing here
    talks to the API server.
    """
    controller = Controller(kube, settings, reporter, owns=owns)
    controller.on_result = lambda result, seconds: metrics.observe_reconcile(
        result.step, result.error, seconds
    )
    metrics.track_queue_depth(lambda: len(controller.queue))
    controller.queue.observer = metrics.queue_observer()
    metrics.track_certificates(controller.view.pkis)
    return controller, attach_authority(kube, settings, controller, metrics.registry)


def _metrics_names(settings: Settings) -> tuple[str, ...]:
    """The names of the metrics Service the ServiceMonitor scrapes through."""
    service = f"pkiwarden-issuer.{settings.namespace}"
    return ("pkiwarden-issuer", service, f"{service}.svc", "localhost")


def _wait(ready: Callable[[], bool], timeout: float, stop: threading.Event) -> bool:
    deadline = time.monotonic() + timeout
    while not ready():
        if stop.is_set() or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
