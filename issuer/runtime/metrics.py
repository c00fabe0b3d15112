"""The issuer's Prometheus metrics, on a registry of its own.

Names follow controller-runtime (reconcile, workqueue, leader election) and
cert-manager (certificate expiry and readiness) so existing dashboards and
alerts work unchanged. The registry is passed around rather than the global
default: tests and two issuers in one process never share counters.

Certificate series are derived from the Pki objects the issuer already
caches (status ``notAfter``, ``renewalTime``, ``failedIssuanceAttempts`` and
the ``Ready`` condition): they show what the cluster shows, and a deleted
Pki's series disappear with it. They are rendered per Pki when the cache
reports a change of it, not at scrape time (see ``issuer.runtime.object_series``): at
10,000 Pkis a scrape then costs milliseconds instead of half a second of CPU.
The CA's families live with the CA's loop (``issuer.controllers.authorities.reporting.metrics``), on
the same registry.

No ``_created`` series (controller-runtime has none, and they double the
series count) and ``process_*`` as every Go controller exports them.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from issuer.runtime.object_series import ObjectSeries

# client-go's workqueue buckets: 10 ns to 10 s, by powers of ten.
QUEUE_BUCKETS = tuple(10.0**exponent for exponent in range(-8, 2))

# Process-wide in prometheus_client; both processes want it.
disable_created_metrics()  # type: ignore[no-untyped-call]


class ReconcileResult(StrEnum):
    """controller-runtime's ``result`` label values."""

    SUCCESS = "success"
    ERROR = "error"
    REQUEUE = "requeue"
    REQUEUE_AFTER = "requeue_after"


class IssuerMetrics:
    """The metric families and the small calls that keep them current."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        controller: str = "pki",
        lease: str = "pkiwarden-issuer",
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.controller = controller
        self.lease = lease
        r = self.registry
        self._reconcile_total = Counter(
            "controller_runtime_reconcile_total",
            "Total number of reconciliations per controller and result.",
            ["controller", "result"],
            registry=r,
        )
        self._reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller.",
            ["controller"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self._reconcile_errors = Counter(
            "controller_runtime_reconcile_errors_total",
            "Total number of reconciliation errors per controller.",
            ["controller"],
            registry=r,
        )
        self._depth = Gauge(
            "workqueue_depth", "Current depth of the work queue.", ["name"], registry=r
        )
        self._adds = Counter(
            "workqueue_adds_total",
            "Total number of adds handled by the work queue.",
            ["name"],
            registry=r,
        )
        self._queue_duration = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in the work queue before being requested.",
            ["name"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self._work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from the work queue takes.",
            ["name"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self._retries = Counter(
            "workqueue_retries_total",
            "Total number of retries handled by the work queue.",
            ["name"],
            registry=r,
        )
        self._events = Counter(
            "pkiwarden_events_total",
            "Event objects created or updated by the issuer, by reason and type.",
            ["reason", "type"],
            registry=r,
        )
        self._leader = Gauge(
            "leader_election_master_status",
            "1 while this process holds the leader Lease, else 0.",
            ["name"],
            registry=r,
        )
        self._leader.labels(name=lease).set(0)
        ProcessCollector(registry=r)
        self._series: list[ObjectSeries] = []  # per-object families, rendered on change
        # Series exist at zero before the first reconcile, so rate() has a start.
        for result in ReconcileResult:
            self._reconcile_total.labels(controller=controller, result=result.value)
        self._reconcile_errors.labels(controller=controller)
        self._adds.labels(name=controller)
        self._retries.labels(name=controller)

    # -- controller and queue ---------------------------------------------------

    def reconciled(self, result: ReconcileResult, seconds: float) -> None:
        self._reconcile_total.labels(controller=self.controller, result=result.value).inc()
        self._reconcile_time.labels(controller=self.controller).observe(seconds)
        if result is ReconcileResult.ERROR:
            self._reconcile_errors.labels(controller=self.controller).inc()

    def track_queue_depth(self, depth: Callable[[], int]) -> None:
        """Read the depth at scrape time instead of updating it on every add and get."""
        self._depth.labels(name=self.controller).set_function(lambda: float(depth()))

    def queue_retried(self) -> None:
        self._retries.labels(name=self.controller).inc()

    def queue_observer(self) -> _QueueMetrics:
        """The work queue's observer (``WorkQueue.observer``): adds, time queued, time worked."""
        return _QueueMetrics(
            self._adds.labels(name=self.controller),
            self._queue_duration.labels(name=self.controller),
            self._work_duration.labels(name=self.controller),
        )

    def observe_reconcile(self, result: ReconcileResult, seconds: float) -> None:
        """One reconcile's outcome; a failure or a conflict means the key is queued again."""
        self.reconciled(result, seconds)
        if result is not ReconcileResult.SUCCESS:
            self.queue_retried()

    # -- per-object series ------------------------------------------------------

    def add_series(self, series: ObjectSeries) -> None:
        """Export ``series`` too (a controller's families derived from its objects)."""
        self._series.append(series)

    # -- events and leadership ----------------------------------------------------

    def event_emitted(self, type: str, reason: str) -> None:
        self._events.labels(reason=reason, type=str(type)).inc()

    def leading(self, is_leader: bool) -> None:
        self._leader.labels(name=self.lease).set(1 if is_leader else 0)

    # -- exposition -------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The body and Content-Type for ``GET /metrics``."""
        body = generate_latest(self.registry) + b"".join(s.exposition() for s in self._series)
        return body, CONTENT_TYPE_LATEST

    def response(self) -> tuple[int, str, bytes]:
        """``GET /metrics`` as the health server's routes answer: status, type, body."""
        body, content_type = self.exposition()
        return 200, content_type, body

    def gzip_response(self) -> tuple[int, str, bytes]:
        """``GET /metrics`` gzipped, for a scraper that accepts it (Prometheus does).

        The per-Pki series come as gzip members kept from the last scrape: at
        100,000 Pkis a plain scrape formats 48 MB, this one only what changed.
        """
        registry = gzip.compress(generate_latest(self.registry), compresslevel=1, mtime=0)
        return (
            200,
            CONTENT_TYPE_LATEST,
            registry + b"".join(series.gzip_exposition() for series in self._series),
        )


class _QueueMetrics:
    """client-go's workqueue families for one queue, fed by the queue itself."""

    def __init__(self, adds: Any, queued: Any, worked: Any) -> None:
        self._adds = adds
        self._queued = queued
        self._worked = worked

    def added(self) -> None:
        self._adds.inc()

    def started(self, waited: float) -> None:
        self._queued.observe(waited)

    def finished(self, worked: float) -> None:
        self._worked.observe(worked)
