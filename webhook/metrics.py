"""Prometheus metrics of the webhook, in a registry of its own.

A registry per app (not the process-global default) lets tests build several
apps in one process and read exactly what each one counted. No ``_created``
series (they double the series count for no alert anyone writes), and
``process_*`` as every Kubernetes component exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Answers take well under a millisecond; the API server gives up at 5 s.
CACHE_SYNCED = "pkiwarden_cache_synced"
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# Process-wide in prometheus_client; both processes want it.
disable_created_metrics()  # type: ignore[no-untyped-call]


class _CacheSyncCollector(Collector):
    """Reads cache sync state at scrape time instead of keeping a copy up to date."""

    def __init__(self, status: Callable[[], Mapping[str, bool]]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            CACHE_SYNCED,
            "1 once the list+watch cache has completed its first list.",
            labels=["cache"],
        )
        for name, synced in sorted(self._status().items()):
            family.add_metric([name], 1.0 if synced else 0.0)
        yield family


class WebhookMetrics:
    def __init__(self, cache_status: Callable[[], Mapping[str, bool]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pkiwarden_admission_requests_total",
            "AdmissionReviews answered, by kind, operation and verdict.",
            ["kind", "operation", "allowed"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "pkiwarden_admission_duration_seconds",
            "Time from receiving a review's body to having its answer.",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.warnings = Counter(
            "pkiwarden_admission_warnings_total",
            "Admission warnings returned to clients.",
            registry=self.registry,
        )
        self.invalid = Counter(
            "pkiwarden_admission_invalid_requests_total",
            "Bodies that were not AdmissionReview v1 requests (answered 400).",
            registry=self.registry,
        )
        self.internal_errors = Counter(
            "pkiwarden_admission_internal_errors_total",
            "Reviews denied because the webhook itself failed (see the log).",
            registry=self.registry,
        )
        self.overloaded = Counter(
            "pkiwarden_admission_overloaded_total",
            "Reviews refused unchecked (429, retry) because too many were waiting.",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "pkiwarden_admission_in_flight_requests",
            "Reviews being answered right now.",
            registry=self.registry,
        )
        self.registry.register(_CacheSyncCollector(cache_status))
        ProcessCollector(registry=self.registry)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
