"""A Pod is told the moment it appears, stays told while the failure lasts, and hears the end.

The API server runs with a short ``--event-ttl`` for this module and the
issuer is told the same; its retry backoff starts at ten minutes, so nothing
seen here can come from a retry: a late Pod is told by the Pod watch, and an
Event outlives the TTL only because the issuer refreshes it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from issuer.runtime.settings import Settings
from pkiwarden.local import controlplane, issuer_process
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from shared.backoff import Backoff
from shared.kube.client import EVENTS, PKI_POLICIES, PKIS, Kube
from tests.e2e.helpers import (
    container,
    create_pki,
    create_pod,
    events_on,
    eventually,
    kill_9,
    policed_namespace,
    ready,
    running_issuer,
    volume,
)

EVENT_TTL_SECONDS = 20
RETRY_SECONDS = 600.0  # longer than any test here: no retry can tell or refresh anything
TOLD_WITHIN = 15  # seconds; told on arrival takes well under 5, the next retry 10 minutes
_counter = itertools.count()


@pytest.fixture(scope="module")
def short_event_ttl(control_plane: ControlPlane, kube: Kube) -> Iterator[None]:
    controlplane.restart_apiserver(
        control_plane, die_with_caller=True, flags=[f"--event-ttl={EVENT_TTL_SECONDS}s"]
    )
    try:
        yield
    finally:
        controlplane.restart_apiserver(
            control_plane, die_with_caller=True, flags=["--event-ttl=1h"]
        )


@pytest.fixture(scope="module")
def issuer(control_plane: ControlPlane, kube: Kube, short_event_ttl: None) -> Iterator[LocalIssuer]:
    settings = Settings(
        namespace="pkiwarden-e2e-lifecycle",
        workers=2,
        health_port=0,
        event_ttl=timedelta(seconds=EVENT_TTL_SECONDS),
        retry=Backoff(RETRY_SECONDS, RETRY_SECONDS),
    )
    with running_issuer(control_plane, settings, "issuer-lifecycle") as running:
        yield running


@pytest.fixture
def namespace(control_plane: ControlPlane, kube: Kube) -> Iterator[str]:
    with policed_namespace(control_plane, kube, f"told-{next(_counter)}", ["app1"]) as name:
        yield name


def _failing_pki(kube: Kube, namespace: str) -> dict[str, Any]:
    """A Pki the policy does not allow (no webhook here), after its first failed attempt."""
    pki = create_pki(kube, namespace, "app2-pki", serviceName="app2")
    eventually(lambda: events_on(kube, pki, "NotAllowed"), 60, "the Pki's first failure")
    return pki


def _attempts(kube: Kube, namespace: str) -> int:
    status = kube.get(PKIS.path(namespace, "app2-pki")).get("status") or {}
    return int(status.get("failedIssuanceAttempts") or 0)


def test_a_pod_created_into_a_failure_is_told_at_once_and_stays_told(
    control_plane: ControlPlane, kube: Kube, issuer: LocalIssuer, namespace: str
) -> None:
    pki = _failing_pki(kube, namespace)
    # The policy's own watch event may wake the new Pki once more; then it waits 10 minutes.
    time.sleep(2)
    attempts = _attempts(kube, namespace)
    assert attempts in (1, 2)
    pod = create_pod(
        kube,
        namespace,
        "late",
        {"containers": [container(envFrom=[{"secretRef": {"name": "app2-pki-tls"}}])]},
    )
    (told,) = eventually(
        lambda: events_on(kube, pod, "NotAllowed"), TOLD_WITHIN, "the new Pod told"
    )
    assert told["type"] == "Warning"
    assert 'spec.serviceName: "app2"' in told["message"]
    assert _attempts(kube, namespace) == attempts, "telling a new Pod is no issuance attempt"
    # The control: an Event nobody refreshes is gone after the TTL, so what follows means it.
    unrefreshed = kube.create(
        EVENTS.path(namespace),
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "unrefreshed"},
            "involvedObject": {"kind": "Pod", "namespace": namespace, "name": "nobody"},
            "reason": "Test",
            "message": "left alone",
            "type": "Normal",
        },
    )
    assert unrefreshed["metadata"]["name"] == "unrefreshed"

    # Past the Event time-to-live: only refreshes keep the Events alive.
    time.sleep(EVENT_TTL_SECONDS * 2)
    page = kube.get(EVENTS.path(namespace), params={"fieldSelector": "metadata.name=unrefreshed"})
    assert page.get("items") == [], "the control Event outlived the TTL"
    (still,) = events_on(kube, pod, "NotAllowed")
    assert still["metadata"]["name"] == told["metadata"]["name"], "refreshed, not re-created"
    assert still["count"] > told["count"]
    assert events_on(kube, pki, "NotAllowed"), "the Pki's own Warning is refreshed too"
    assert _attempts(kube, namespace) == attempts, "the refreshes are not retries"
    described = control_plane.kubectl("describe", "pod", "late", "-n", namespace).stdout
    assert "NotAllowed" in described


def test_the_told_pods_hear_that_the_certificate_is_back(
    kube: Kube, issuer: LocalIssuer, namespace: str
) -> None:
    pki = _failing_pki(kube, namespace)
    told = create_pod(kube, namespace, "web", volume("app2-pki-tls"))
    eventually(lambda: events_on(kube, told, "NotAllowed"), TOLD_WITHIN, "the Pod told")
    bystander = create_pod(kube, namespace, "other", volume("unrelated-tls"))

    policy = kube.get(PKI_POLICIES.path(name=f"e2e-{namespace}"))
    policy["spec"]["allowedServiceNames"] = ["app1", "app2"]
    kube.replace(PKI_POLICIES.path(name=f"e2e-{namespace}"), policy)

    eventually(lambda: ready(kube, namespace, "app2-pki"), 60, "the Pki to become Ready")
    (resolution,) = eventually(
        lambda: events_on(kube, told, "Issued"), 30, "the Normal Event on the told Pod"
    )
    assert resolution["type"] == "Normal"
    assert resolution["message"].startswith("Pki app2-pki is issued again: certificate ")
    assert " issued into Secret app2-pki-tls, valid until " in resolution["message"]
    assert events_on(kube, pki, "Issued")
    assert events_on(kube, bystander) == []


def test_pods_told_before_an_issuer_restart_hear_that_the_certificate_is_back(
    control_plane: ControlPlane, kube: Kube, issuer: LocalIssuer, namespace: str
) -> None:
    """The issuer that told the Pod is gone; the cause goes while none runs; the next one,
    knowing whom was told only from what the cluster holds, says the certificate is back."""
    _failing_pki(kube, namespace)
    told = create_pod(kube, namespace, "web", volume("app2-pki-tls"))
    eventually(lambda: events_on(kube, told, "NotAllowed"), TOLD_WITHIN, "the Pod told")

    kill_9(control_plane, issuer.name)
    policy = kube.get(PKI_POLICIES.path(name=f"e2e-{namespace}"))
    policy["spec"]["allowedServiceNames"] = ["app1", "app2"]
    kube.replace(PKI_POLICIES.path(name=f"e2e-{namespace}"), policy)
    issuer_process.start(control_plane, replace(issuer.settings, health_port=0), name=issuer.name)

    eventually(lambda: ready(kube, namespace, "app2-pki"), 60, "the Pki to become Ready")
    (resolution,) = eventually(
        lambda: events_on(kube, told, "Issued"), 30, "the Normal Event on the told Pod"
    )
    assert resolution["message"].startswith("Pki app2-pki is issued again: certificate ")
