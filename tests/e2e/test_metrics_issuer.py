"""``/metrics`` of a running issuer after a scripted scenario: the values, not just the names."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from issuer.runtime.settings import Settings
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from shared.kube.client import PKIS, SECRETS, Kube
from tests.e2e.helpers import (
    Samples,
    create_pki,
    eventually,
    policed_namespace,
    ready,
    running_issuer,
    scrape,
    value,
)

NAMESPACE = "metrics-e2e"
CA_NAMESPACE = "pkiwarden-e2e-metrics"  # the issuer's own namespace, home of the CA


@pytest.fixture(scope="module")
def issuer(control_plane: ControlPlane, kube: Kube) -> Iterator[LocalIssuer]:
    settings = Settings(namespace=CA_NAMESPACE, workers=2, health_port=0)
    with (
        policed_namespace(control_plane, kube, NAMESPACE, ["app1"], policy="e2e-metrics"),
        running_issuer(control_plane, settings, "issuer-metrics") as running,
    ):
        yield running


def not_after(kube: Kube, name: str, namespace: str = NAMESPACE) -> float:
    secret: dict[str, Any] = kube.get(SECRETS.path(namespace, name))
    pem = base64.b64decode(secret["data"]["tls.crt"])
    return x509.load_pem_x509_certificates(pem)[0].not_valid_after_utc.timestamp()


def test_metrics_after_a_scripted_scenario(kube: Kube, issuer: LocalIssuer) -> None:
    create_pki(kube, NAMESPACE, "good", serviceName="app1")
    create_pki(kube, NAMESPACE, "denied", serviceName="appp1")
    eventually(lambda: ready(kube, NAMESPACE, "good"), 60, "Pki good Ready")

    def settled() -> Samples | None:
        samples = scrape(issuer)
        denied = value(
            samples,
            "pkiwarden_certificate_ready_status",
            namespace=NAMESPACE,
            name="denied",
            condition="False",
        )
        return samples if denied == 1.0 else None

    samples = eventually(settled, 30, "metrics for both Pkis")
    where = {"namespace": NAMESPACE, "name": "good"}
    expiry = value(samples, "pkiwarden_certificate_expiration_timestamp_seconds", **where)
    assert expiry == not_after(kube, "good-tls")
    assert value(samples, "pkiwarden_certificate_ready_status", **where, condition="True") == 1
    assert value(samples, "pkiwarden_certificate_ready_status", **where, condition="False") == 0
    assert (value(samples, "pkiwarden_events_total", reason="Issued", type="Normal") or 0) >= 1
    assert (value(samples, "pkiwarden_events_total", reason="NotAllowed", type="Warning") or 0) >= 1
    success = value(
        samples, "controller_runtime_reconcile_total", controller="pki", result="success"
    )
    errors = value(samples, "controller_runtime_reconcile_total", controller="pki", result="error")
    assert (success or 0) >= 1
    assert (errors or 0) >= 1
    count = value(samples, "controller_runtime_reconcile_time_seconds_count", controller="pki")
    assert (count or 0) >= (success or 0) + (errors or 0)
    assert (value(samples, "workqueue_retries_total", name="pki") or 0) >= 1
    assert value(samples, "workqueue_depth", name="pki") is not None
    assert value(samples, "leader_election_master_status", name="pkiwarden-issuer") == 1
    assert (value(samples, "controller_runtime_reconcile_errors_total", controller="pki") or 0) >= 1
    assert (value(samples, "workqueue_adds_total", name="pki") or 0) >= 2
    for histogram in ("workqueue_queue_duration_seconds", "workqueue_work_duration_seconds"):
        assert (value(samples, f"{histogram}_count", name="pki") or 0) >= 2, histogram
    assert value(samples, "pkiwarden_certificate_renewal_timestamp_seconds", **where) is not None
    denied = {"namespace": NAMESPACE, "name": "denied", "reason": "NotAllowed"}
    failures = value(samples, "pkiwarden_certificate_failed_issuance_attempts", **denied)
    assert (failures or 0) >= 1
    ca_expiry = value(samples, "pkiwarden_ca_expiration_timestamp_seconds", authority="default")
    assert ca_expiry == not_after(kube, "pkiwarden-ca", namespace=CA_NAMESPACE)
    assert ca_expiry >= expiry
    assert value(samples, "process_cpu_seconds_total") is not None
    assert not [name for name, _ in samples if name.endswith("_created")]

    kube.delete(PKIS.path(NAMESPACE, "good"))

    def gone() -> bool:
        samples = scrape(issuer)
        return not any(
            dict(labels).get("name") == "good"
            for (name, labels) in samples
            if name.startswith("pkiwarden_certificate_")
        )

    eventually(gone, 30, "the deleted Pki's series to disappear")
