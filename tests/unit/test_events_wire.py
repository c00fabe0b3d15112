"""The Event objects as the API server and ``kubectl describe`` read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from issuer.controllers.pkis.reporting.pki_events import pki_ref
from issuer.runtime.events.correlator import Correlator, Draft, EventType, ObjectRef
from issuer.runtime.events.recorder import EventSink
from shared.defaults import secret_name
from shared.kube.client import Kube

T0 = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def sink() -> EventSink:
    # A Kube pointed nowhere: body() builds objects and never calls the API.
    class Configuration:
        host = "https://127.0.0.1:1"
        verify_ssl = False
        ssl_ca_cert = cert_file = key_file = None

    return EventSink(Kube(Configuration()), instance="issuer-7d9f-abcde")


def pki(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": "app1-pki", "namespace": "app1", "uid": "u-1", "generation": 3},
        "spec": {"serviceName": "app1", **spec},
    }


def test_the_event_body_has_what_describe_and_validation_need() -> None:
    clock = [T0]
    correlator = Correlator(clock=lambda: clock[0])
    ref = pki_ref(pki())
    first = correlator.correlate(Draft(ref, EventType.WARNING, "NotAllowed", "line one\nline two"))
    correlator.written(first)
    clock[0] = T0 + timedelta(minutes=2)
    again = correlator.correlate(Draft(ref, EventType.WARNING, "NotAllowed", "line one\nline two"))

    body = sink().body(again)

    assert body["metadata"] == {"name": first.name, "namespace": "app1"}
    assert body["metadata"]["name"].startswith("app1-pki.")
    assert body["involvedObject"] == {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "namespace": "app1",
        "name": "app1-pki",
        "uid": "u-1",
    }
    assert body["type"] == "Warning"
    assert body["reason"] == "NotAllowed"
    assert body["message"] == "line one line two"
    assert body["count"] == 2
    assert body["firstTimestamp"] == "2030-01-02T03:04:05Z"
    assert body["lastTimestamp"] == "2030-01-02T03:06:05Z"
    assert body["source"] == {"component": "pkiwarden-issuer"}
    assert body["reportingComponent"] == "pkiwarden-issuer"
    assert body["reportingInstance"] == "issuer-7d9f-abcde"
    assert "eventTime" not in body


def test_a_pod_reference_carries_the_pods_uid() -> None:
    pod = {"metadata": {"name": "web-0", "namespace": "app1", "uid": "pod-uid"}}
    assert ObjectRef.of(pod, api_version="v1", kind="Pod").as_wire() == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "app1",
        "name": "web-0",
        "uid": "pod-uid",
    }


def test_the_secret_name_defaults_like_the_schema() -> None:
    assert secret_name(pki()) == "app1-pki-tls"
    assert secret_name(pki(secretName="custom")) == "custom"
