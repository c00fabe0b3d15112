"""``/metrics`` of a running issuer after a scripted scenario: the values, not just the names."""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from issuer.settings import Settings
from pkiwarden.controlplane import ControlPlane
from shared.kube.client import PKI_POLICIES, PKIS, SECRETS, Kube
from tests.e2e.conftest import delete_namespace
from tests.e2e.test_events_issuer import (
    RunningIssuer,
    create_pki,
    eventually,
    policy_body,
    ready,
    start_issuer,
    stop_issuer,
)

NAMESPACE = "metrics-e2e"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(issuer: RunningIssuer) -> Samples:
    url = f"http://127.0.0.1:{issuer.health_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, metric: str, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


@pytest.fixture(scope="module")
def issuer(control_plane: ControlPlane, kube: Kube) -> Iterator[RunningIssuer]:
    control_plane.kubectl("create", "namespace", NAMESPACE)
    kube.create(PKI_POLICIES.path(), policy_body("e2e-metrics", NAMESPACE, ["app1"]))
    settings = Settings(namespace="pkiwarden-e2e-metrics", workers=2, health_port=0)
    running = start_issuer(control_plane, "issuer-metrics", settings)
    try:
        yield running
    finally:
        stop_issuer(control_plane, running)
        control_plane.kubectl("delete", "pkipolicy", "e2e-metrics", "--ignore-not-found")
        delete_namespace(control_plane, NAMESPACE)


def not_after(kube: Kube, name: str) -> float:
    secret: dict[str, Any] = kube.get(SECRETS.path(NAMESPACE, name))
    pem = base64.b64decode(secret["data"]["tls.crt"])
    return x509.load_pem_x509_certificates(pem)[0].not_valid_after_utc.timestamp()


def test_metrics_after_a_scripted_scenario(kube: Kube, issuer: RunningIssuer) -> None:
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

    kube.delete(PKIS.path(NAMESPACE, "good"))

    def gone() -> bool:
        samples = scrape(issuer)
        return not any(
            dict(labels).get("name") == "good"
            for (name, labels) in samples
            if name.startswith("pkiwarden_certificate_")
        )

    eventually(gone, 30, "the deleted Pki's series to disappear")
