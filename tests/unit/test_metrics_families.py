"""What both processes expose, read back through Prometheus's own text parser."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from issuer.metrics import IssuerMetrics, ReconcileResult
from issuer.queue import WorkQueue
from webhook.metrics import WebhookMetrics

CONTROLLER_RUNTIME = (
    "controller_runtime_reconcile_total",
    "controller_runtime_reconcile_errors_total",
    "workqueue_adds_total",
    "workqueue_queue_duration_seconds",
    "workqueue_work_duration_seconds",
    "workqueue_depth",
    "workqueue_retries_total",
)


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def names(text: bytes) -> set[str]:
    return {name for name, _ in samples(text)}


def ca_secret(not_after: datetime) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(not_after - timedelta(days=365))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    return {
        "metadata": {"namespace": "pkiwarden-system", "name": "pkiwarden-ca"},
        "data": {"tls.crt": base64.b64encode(pem).decode()},
    }


def test_issuer_exports_controller_runtime_and_process_families_without_created() -> None:
    metrics = IssuerMetrics()
    queue = WorkQueue()
    queue.observer = metrics.queue_observer()
    metrics.track_queue_depth(lambda: len(queue))
    queue.add("ns/a")
    queue.add("ns/a")  # de-duplicated: one add
    key = queue.get(timeout=1)
    assert key == "ns/a"
    queue.done(key)
    metrics.observe_reconcile(None, "boom", 0.01)
    text, _ = metrics.exposition()
    found = samples(text)
    assert not any(name.endswith("_created") for name, _ in found)
    assert any(name.startswith("process_") for name, _ in found)
    for family in CONTROLLER_RUNTIME:
        assert any(name.startswith(family) for name, _ in found), family
    pki = frozenset({("name", "pki")})
    assert found[("workqueue_adds_total", pki)] == 1
    assert found[("workqueue_queue_duration_seconds_count", pki)] == 1
    assert found[("workqueue_work_duration_seconds_count", pki)] == 1
    errors = ("controller_runtime_reconcile_errors_total", frozenset({("controller", "pki")}))
    assert found[errors] == 1
    error = frozenset({("controller", "pki"), ("result", ReconcileResult.ERROR.value)})
    assert found[("controller_runtime_reconcile_total", error)] == 1


def test_certificate_and_ca_families_come_from_the_cached_objects() -> None:
    metrics = IssuerMetrics()
    failing = {
        "metadata": {"namespace": "app2", "name": "app2-pki"},
        "status": {
            "notAfter": "2027-02-25T03:58:58Z",
            "renewalTime": "2027-01-26T03:58:58Z",
            "failedIssuanceAttempts": 3,
            "conditions": [{"type": "Ready", "status": "False", "reason": "NotAllowed"}],
        },
    }
    fine = {
        "metadata": {"namespace": "app1", "name": "app1-pki"},
        "status": {
            "failedIssuanceAttempts": 0,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Issued"}],
        },
    }
    blocked = {  # a valid certificate in place, only its renewal blocked
        "metadata": {"namespace": "app3", "name": "app3-pki"},
        "status": {
            "failedIssuanceAttempts": 2,
            "conditions": [{"type": "Ready", "status": "True", "reason": "CAUnavailable"}],
        },
    }
    metrics.track_certificates(lambda: [failing, fine, blocked])
    ca_expiry = datetime(2030, 1, 1, tzinfo=UTC)
    metrics.track_ca(lambda: [ca_secret(ca_expiry), {"metadata": {}, "data": {"tls.crt": "x"}}])
    found = samples(metrics.exposition()[0])
    where = {("namespace", "app2"), ("name", "app2-pki")}
    expiry = datetime(2027, 2, 25, 3, 58, 58, tzinfo=UTC).timestamp()
    renewal = datetime(2027, 1, 26, 3, 58, 58, tzinfo=UTC).timestamp()
    assert found[("pkiwarden_certificate_expiration_timestamp_seconds", frozenset(where))] == expiry
    assert found[("pkiwarden_certificate_renewal_timestamp_seconds", frozenset(where))] == renewal
    failures = frozenset({*where, ("reason", "NotAllowed")})
    assert found[("pkiwarden_certificate_failed_issuance_attempts", failures)] == 3
    renewal_blocked = frozenset(
        {("namespace", "app3"), ("name", "app3-pki"), ("reason", "CAUnavailable")}
    )
    assert found[("pkiwarden_certificate_failed_issuance_attempts", renewal_blocked)] == 2
    assert not any(
        name == "pkiwarden_certificate_failed_issuance_attempts" and ("name", "app1-pki") in labels
        for name, labels in found
    )
    ca = frozenset({("namespace", "pkiwarden-system"), ("secret", "pkiwarden-ca")})
    assert found[("pkiwarden_ca_expiration_timestamp_seconds", ca)] == ca_expiry.timestamp()
    assert [n for n, _ in found].count("pkiwarden_ca_expiration_timestamp_seconds") == 1


def test_webhook_exports_process_families_without_created() -> None:
    metrics = WebhookMetrics(lambda: {"pkis": True})
    metrics.requests.labels("Pki", "CREATE", "false").inc()
    metrics.duration.observe(0.001)
    found = names(metrics.exposition())
    assert "pkiwarden_admission_requests_total" in found
    assert any(name.startswith("process_") for name in found)
    assert not any(name.endswith("_created") for name in found)
