"""The signer's metrics: answers by outcome and reason, time to sign, the oldest unanswered.

``pkiwarden_pod_certificate_oldest_pending_seconds`` is what the alert on a
signer that stops answering reads: a request the kubelet waits on keeps its
Pod in ContainerCreating, whatever the reason the issuer does not answer.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class PodCertificateMetrics:
    def __init__(self, registry: CollectorRegistry, oldest_pending: Callable[[], float]) -> None:
        self._answers = Counter(
            "pkiwarden_pod_certificate_requests_total",
            "PodCertificateRequests answered, by signer, answer (Issued, Denied, Failed) "
            "and reason.",
            ["signer", "answer", "reason"],
            registry=registry,
        )
        self._signing = Histogram(
            "pkiwarden_pod_certificate_request_seconds",
            "Time from a PodCertificateRequest's creation to its certificate written.",
            ["signer"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self._writes = Counter(
            "pkiwarden_pod_certificate_writes_total",
            "API writes made for PodCertificateRequests (status and Events).",
            ["kind"],
            registry=registry,
        )
        oldest = Gauge(
            "pkiwarden_pod_certificate_oldest_pending_seconds",
            "Age of the oldest PodCertificateRequest for pkiwarden's signers with no answer.",
            registry=registry,
        )
        oldest.set_function(oldest_pending)

    def answered(self, signer: str, answer: str, reason: str, seconds: float | None) -> None:
        self._answers.labels(signer, answer, reason).inc()
        if answer == "Issued" and seconds is not None:
            self._signing.labels(signer).observe(max(0.0, seconds))

    def wrote(self, kind: str) -> None:
        self._writes.labels(kind).inc()
