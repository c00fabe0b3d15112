"""Events reach ``kubectl describe`` on the real API server: the Pki and every consuming Pod.

These drive the issuer's PkiEventRecorder directly, as the reconcile loop does at
every outcome, so each property (aggregation on one object, every way of
consuming, namespaces kept apart, expiry, restarts) is checked against the
API server's own Event handling.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from issuer.controllers.pkis.reporting.pki_events import PkiEventRecorder
from issuer.controllers.pkis.reporting.pod_sources import ListedPods
from issuer.controllers.pkis.reporting.reasons import Reason
from issuer.runtime.events.correlator import COMBINED_PREFIX
from issuer.runtime.events.recorder import COMPONENT, EventRecorder, EventSink
from pkiwarden.local.controlplane import ControlPlane
from shared.kube.client import Kube
from tests.e2e.helpers import container, create_pki, create_pod, delete_namespace, events_on, volume

_counter = itertools.count()

MESSAGE = (
    'spec.serviceName: "appp1" in Pki app1-pki is not allowed in namespace "{ns}" '
    '(allowed by PkiPolicy "app-teams": app1); did you mean "app1"?'
)


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"events-{next(_counter)}-{id(control_plane) % 10000}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    delete_namespace(control_plane, name)


def reporter(kube: Kube, instance: str = "e2e-issuer") -> PkiEventRecorder:
    return PkiEventRecorder(EventRecorder(EventSink(kube, instance=instance)), ListedPods(kube))


def denied_pki(kube: Kube, namespace: str, name: str = "app1-pki") -> dict[str, Any]:
    """A Pki with the typo the reporter's messages talk about; nothing issues it here."""
    return create_pki(kube, namespace, name, serviceName="appp1")


CONSUMING_SPECS: dict[str, dict[str, Any]] = {
    "by-volume": volume("app1-pki-tls"),
    "by-projected": {
        "volumes": [{"name": "p", "projected": {"sources": [{"secret": {"name": "app1-pki-tls"}}]}}]
    },
    "by-env": {
        "containers": [
            container(
                env=[
                    {
                        "name": "CERT",
                        "valueFrom": {"secretKeyRef": {"name": "app1-pki-tls", "key": "tls.crt"}},
                    }
                ]
            )
        ]
    },
    "by-env-from": {"containers": [container(envFrom=[{"secretRef": {"name": "app1-pki-tls"}}])]},
    "by-init-container": {
        "initContainers": [
            container(name="init", envFrom=[{"secretRef": {"name": "app1-pki-tls"}}])
        ]
    },
}


def test_describe_pod_shows_one_warning_whose_count_grows(
    control_plane: ControlPlane, kube: Kube, namespace: str
) -> None:
    pki = denied_pki(kube, namespace)
    pod = create_pod(kube, namespace, "web", volume("app1-pki-tls"))
    message = MESSAGE.format(ns=namespace)
    issuer = reporter(kube)

    for _ in range(3):  # three retries of the same failure
        issuer.failed(pki, Reason.NOT_ALLOWED, message)

    (event,) = events_on(kube, pod)
    assert event["type"] == "Warning"
    assert event["reason"] == "NotAllowed"
    assert event["message"] == message
    assert event["count"] == 3
    assert event["source"]["component"] == COMPONENT
    assert event["reportingComponent"] == COMPONENT
    assert event["involvedObject"]["uid"] == pod["metadata"]["uid"]
    assert event["firstTimestamp"] and event["lastTimestamp"]
    (on_pki,) = events_on(kube, pki)
    assert (on_pki["reason"], on_pki["count"]) == ("NotAllowed", 3)
    assert on_pki["involvedObject"]["kind"] == "Pki"

    described = control_plane.kubectl("describe", "pod", "web", "-n", namespace).stdout
    line = next(line for line in described.splitlines() if "NotAllowed" in line)
    assert "Warning" in line
    assert COMPONENT in line
    assert "(x3 over" in line
    assert 'did you mean "app1"?' in line
    described_pki = control_plane.kubectl("describe", "pki", "app1-pki", "-n", namespace).stdout
    assert "NotAllowed" in described_pki
    assert COMPONENT in described_pki


def test_every_way_of_consuming_is_told_and_nobody_else(
    control_plane: ControlPlane, kube: Kube, namespace: str
) -> None:
    pki = denied_pki(kube, namespace)
    consumers = {
        name: create_pod(kube, namespace, name, spec) for name, spec in CONSUMING_SPECS.items()
    }
    bystanders = [
        create_pod(kube, namespace, "bystander", volume("someone-else-tls")),
        create_pod(kube, namespace, "no-secrets", {}),
    ]
    control_plane.kubectl("create", "namespace", f"{namespace}-other")
    try:
        elsewhere = create_pod(kube, f"{namespace}-other", "by-volume", volume("app1-pki-tls"))
        reporter(kube).failed(pki, Reason.SECRET_CONFLICT, "the Secret is taken")
        for name, pod in consumers.items():
            reasons = [event["reason"] for event in events_on(kube, pod)]
            assert reasons == ["SecretConflict"], name
        for pod in [*bystanders, elsewhere]:
            assert events_on(kube, pod) == [], pod["metadata"]["name"]
    finally:
        delete_namespace(control_plane, f"{namespace}-other")


def test_a_pod_created_after_the_failure_is_told_at_the_next_retry(
    kube: Kube, namespace: str
) -> None:
    pki = denied_pki(kube, namespace)
    early = create_pod(kube, namespace, "early", volume("app1-pki-tls"))
    issuer = reporter(kube)
    issuer.failed(
        pki, Reason.CA_UNAVAILABLE, "the CA Secret pkiwarden-system/pkiwarden-ca is missing"
    )
    late = create_pod(kube, namespace, "late", volume("app1-pki-tls"))
    assert events_on(kube, late) == []

    issuer.failed(
        pki, Reason.CA_UNAVAILABLE, "the CA Secret pkiwarden-system/pkiwarden-ca is missing"
    )

    assert [(e["reason"], e["count"]) for e in events_on(kube, late)] == [("CAUnavailable", 1)]
    assert [(e["reason"], e["count"]) for e in events_on(kube, early)] == [("CAUnavailable", 2)]


def test_thirty_different_messages_do_not_make_thirty_events(kube: Kube, namespace: str) -> None:
    pki = denied_pki(kube, namespace)
    issuer = reporter(kube)
    for attempt in range(30):
        issuer.failed(pki, Reason.ISSUANCE_FAILED, f"the API server refused attempt {attempt}")

    events = events_on(kube, pki)
    assert len(events) <= 10
    combined = [e for e in events if e["message"].startswith(COMBINED_PREFIX)]
    assert len(combined) == 1
    assert sum(e["count"] for e in events) >= 25  # the spam filter's burst, then it holds back


def test_an_expired_event_is_created_again(
    control_plane: ControlPlane, kube: Kube, namespace: str
) -> None:
    pki = denied_pki(kube, namespace)
    issuer = reporter(kube)
    issuer.failed(pki, Reason.NOT_ALLOWED, "first")
    (first,) = events_on(kube, pki)
    control_plane.kubectl("delete", "event", first["metadata"]["name"], "-n", namespace)

    issuer.failed(pki, Reason.NOT_ALLOWED, "first")

    (again,) = events_on(kube, pki)
    assert again["metadata"]["name"] != first["metadata"]["name"]
    assert again["count"] == 1


def test_a_restarted_issuer_keeps_counting_on_the_same_event(kube: Kube, namespace: str) -> None:
    pki = denied_pki(kube, namespace)
    pod = create_pod(kube, namespace, "web", volume("app1-pki-tls"))
    reporter(kube, instance="before").failed(pki, Reason.NOT_ALLOWED, "not allowed")
    reporter(kube, instance="after").failed(pki, Reason.NOT_ALLOWED, "not allowed")

    assert [e["count"] for e in events_on(kube, pki)] == [2]
    assert [e["count"] for e in events_on(kube, pod)] == [2]


def test_success_is_a_normal_event_on_the_pki_only(kube: Kube, namespace: str) -> None:
    pki = denied_pki(kube, namespace)
    pod = create_pod(kube, namespace, "web", volume("app1-pki-tls"))
    reporter(kube).succeeded(pki, Reason.ISSUED, "certificate 0a1b issued into Secret app1-pki-tls")

    (event,) = events_on(kube, pki)
    assert (event["type"], event["reason"]) == ("Normal", "Issued")
    assert events_on(kube, pod) == []


def test_messages_are_one_line_within_1024_bytes(kube: Kube, namespace: str) -> None:
    pki = denied_pki(kube, namespace)
    reporter(kube).failed(pki, Reason.INVALID_SPEC, "line one\nline two " + "x" * 3000)

    (event,) = events_on(kube, pki)
    assert "\n" not in event["message"]
    assert len(event["message"].encode()) <= 1024
    assert json.dumps(event["message"]).startswith('"line one line two')
