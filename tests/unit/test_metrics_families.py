"""What both processes expose, read back through Prometheus's own text parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from issuer.controllers.authorities.decisions.phases import Phase
from issuer.controllers.authorities.reporting.metrics import AuthorityMetrics
from issuer.controllers.authorities.reporting.summary import Pass
from issuer.controllers.pkis.controller import reconcile_result
from issuer.controllers.pkis.reporting.metrics import certificate_series
from issuer.runtime.metrics import IssuerMetrics, ReconcileResult
from issuer.runtime.queue import WorkQueue
from shared.kube.cache import ChangeHandler
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
    metrics.observe_reconcile(reconcile_result(None, "boom"), 0.01)
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


class AddedObjects:
    """What a watch cache tells its listeners when it lists these objects."""

    def __init__(self) -> None:
        self._handlers: list[ChangeHandler] = []

    def add_listener(self, handler: ChangeHandler) -> None:
        self._handlers.append(handler)

    def add(self, *objects: dict[str, Any]) -> None:
        for obj in objects:
            for handler in self._handlers:
                handler("ADDED", obj)


def test_certificate_families_come_from_the_cached_pkis() -> None:
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
    cache = AddedObjects()
    metrics.add_series(certificate_series(cache))
    cache.add(failing, fine, blocked)
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


def test_ca_families_show_the_authority_loops_last_pass() -> None:
    metrics = IssuerMetrics()
    ca = AuthorityMetrics(metrics.registry)
    ca_expiry = datetime(2030, 1, 1, tzinfo=UTC)
    ca.observe(
        "default",
        Pass(
            phase=Phase.REISSUING,
            phase_start=ca_expiry - timedelta(days=3000),
            pending=3,
            blocked=["app2/app2-pki"],
            blocked_total=1,
            active_not_after=ca_expiry,
        ),
    )
    found = samples(metrics.exposition()[0])
    authority = frozenset({("authority", "default")})
    assert found[("pkiwarden_ca_expiration_timestamp_seconds", authority)] == ca_expiry.timestamp()
    assert found[("pkiwarden_ca_pending_reissue", authority)] == 3
    assert found[("pkiwarden_ca_blocked_reissue", authority)] == 1
    start = found[("pkiwarden_ca_rotation_phase_start_timestamp_seconds", authority)]
    assert start == (ca_expiry - timedelta(days=3000)).timestamp()
    ca.observe("default", Pass())  # Stable with no recorded start: 0, which the alert skips
    start = samples(metrics.exposition()[0])[
        ("pkiwarden_ca_rotation_phase_start_timestamp_seconds", authority)
    ]
    assert start == 0
    phases = {
        dict(labels)["phase"]: value
        for (name, labels), value in found.items()
        if name == "pkiwarden_ca_rotation_phase"
    }
    assert phases == {"Stable": 0, "Propagating": 0, "Reissuing": 1, "Retiring": 0}


def test_webhook_exports_process_families_without_created() -> None:
    metrics = WebhookMetrics(lambda: {"pkis": True})
    metrics.requests.labels("Pki", "CREATE", "false").inc()
    metrics.duration.observe(0.001)
    found = names(metrics.exposition())
    assert "pkiwarden_admission_requests_total" in found
    assert any(name.startswith("process_") for name in found)
    assert not any(name.endswith("_created") for name in found)


def test_a_deleted_authoritys_ca_series_go_with_it() -> None:
    metrics = IssuerMetrics()
    ca = AuthorityMetrics(metrics.registry)
    stuck = Pass(phase=Phase.REISSUING, active_not_after=datetime(2030, 1, 1, tzinfo=UTC))
    ca.observe("gone", stuck)
    ca.observe("kept", Pass())
    ca.forget("gone")
    ca.forget("never-seen")
    found = samples(metrics.exposition()[0])
    assert not any(("authority", "gone") in labels for _, labels in found)
    assert any(("authority", "kept") in labels for _, labels in found)
