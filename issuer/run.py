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
from types import FrameType

from issuer.controller import Controller
from issuer.health import HealthServer, text
from issuer.leader import LeaderElector, default_identity
from issuer.metrics import IssuerMetrics
from issuer.reporting.event_reporter import event_reporter
from issuer.reporting.reporter import FanOut, LoggingReporter, Reporter
from issuer.settings import Settings
from shared.kube.client import Kube
from shared.logs import fields

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
    kube = Kube.from_environment(
        settings.kubeconfig, pool_size=settings.workers + WATCH_CONNECTIONS
    )
    metrics = IssuerMetrics(lease=LEASE_NAME)
    if reporter is None:
        events = event_reporter(kube, on_emitted=metrics.event_emitted)
        reporter = FanOut([LoggingReporter(), events])
    controller = Controller(kube, settings, reporter)
    controller.on_result = lambda result, seconds: metrics.observe_reconcile(
        result.step, result.error, seconds
    )
    metrics.track_queue_depth(lambda: len(controller.queue))
    metrics.track_certificates(controller.view.pkis)
    elector: LeaderElector | None = None
    lost = threading.Event()
    health = None
    if settings.health_port >= 0:
        health = HealthServer(settings.health_port)
        health.add_route("/healthz", lambda: text(not stop.is_set(), "alive"))
        health.add_route("/readyz", lambda: text(controller.synced(), "synced"))
        health.add_route("/metrics", metrics.response)
        health.start()
    try:
        controller.start_watching()
        if not controller.wait_synced(settings.sync_timeout_seconds):
            if stop.is_set():
                return 0
            log.error(
                "caches did not sync; is the Pki CRD installed and may the issuer read it?",
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
        if settings.leader_elect:
            elector = LeaderElector(kube, settings.namespace, LEASE_NAME, default_identity())

            def started_leading() -> None:
                metrics.leading(True)
                controller.start_workers()

            def stopped_leading() -> None:
                metrics.leading(False)
                if not stop.is_set():  # lost, not released: stop writing now, exit non-zero
                    log.error("leader election lost; stopping", extra=fields(lease=LEASE_NAME))
                    lost.set()
                    stop.set()

            elector.start(started_leading, stopped_leading)
        else:
            metrics.leading(True)
            controller.start_workers()
        stop.wait()
        log.info("stopping")
        return 1 if lost.is_set() else 0
    finally:
        controller.stop()
        if elector is not None:
            elector.release()  # after the workers stopped: the successor starts clean
        if health is not None:
            health.stop()


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
