"""The seed's story, end to end: the issuer process tells consuming Pods why there is no Secret.

The issuer runs as its own process (leader election on, its own CA namespace)
against the real control plane; no webhook is registered, which is exactly how
a Pki the policy does not allow gets past admission.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from issuer.controllers.authorities.effects.bootstrap_ca import bootstrap_ca
from issuer.runtime.events.recorder import COMPONENT
from issuer.runtime.settings import Settings
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from shared.clock import utc_now
from shared.kube.client import PKI_POLICIES, SECRETS, ApiError, Kube
from tests.e2e.helpers import (
    container,
    create_pki,
    create_pod,
    delete_namespace,
    events_on,
    eventually,
    policed_namespace,
    policy_body,
    ready,
    running_issuer,
    volume,
)

_counter = itertools.count()


@pytest.fixture(scope="module")
def issuer(control_plane: ControlPlane, kube: Kube) -> Iterator[LocalIssuer]:
    settings = Settings(namespace="pkiwarden-e2e-events", workers=2, health_port=0)
    with running_issuer(control_plane, settings, "issuer-events") as running:
        yield running


@pytest.fixture
def namespace(control_plane: ControlPlane, kube: Kube) -> Iterator[str]:
    with policed_namespace(control_plane, kube, f"seed-{next(_counter)}", ["app1"]) as name:
        yield name


def test_the_seed_story(
    control_plane: ControlPlane, kube: Kube, issuer: LocalIssuer, namespace: str
) -> None:
    pod = create_pod(kube, namespace, "web", volume("app1-pki-tls"))
    pki = create_pki(kube, namespace, "app1-pki", serviceName="appp1")

    def typo_warnings() -> list[dict[str, Any]]:
        # The issuer may judge the Pki once before its watch has the namespace's
        # new policy ("not selected by any PkiPolicy"); that Warning is another one.
        return [e for e in events_on(kube, pod, "NotAllowed") if "appp1" in e["message"]]

    def warning() -> dict[str, Any] | None:
        found = typo_warnings()
        return found[0] if found else None

    event = eventually(warning, 60, "a NotAllowed Warning on the consuming Pod")
    assert event["type"] == "Warning"
    assert event["source"]["component"] == COMPONENT
    assert 'spec.serviceName: "appp1"' in event["message"]
    assert "Pki app1-pki" in event["message"]
    # Admitted (no webhook here), so not treated as a typo: no guess at another team's name.
    assert "did you mean" not in event["message"]
    assert "ask the platform team to allow it, or change spec.serviceName" in event["message"]

    grown = eventually(
        lambda: [e for e in typo_warnings() if e["count"] >= 3],
        60,
        "the Warning's count to grow with the retries",
    )
    assert len(typo_warnings()) == 1, "retries must not create new objects"
    assert grown[0]["metadata"]["name"] == event["metadata"]["name"]
    described = control_plane.kubectl("describe", "pod", "web", "-n", namespace).stdout
    assert re.search(r"Warning\s+NotAllowed\s+.*\(x\d+ over .*\)\s+pkiwarden-issuer", described)
    assert events_on(kube, pki, "NotAllowed"), "the Pki is told too"

    late = create_pod(
        kube,
        namespace,
        "late",
        {"containers": [container(envFrom=[{"secretRef": {"name": "app1-pki-tls"}}])]},
    )
    eventually(lambda: events_on(kube, late, "NotAllowed"), 60, "the late Pod to be told")

    fixed = policy_body(f"e2e-{namespace}", namespace, ["app1", "appp1"])
    current = kube.get(PKI_POLICIES.path(name=f"e2e-{namespace}"))
    fixed["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    kube.replace(PKI_POLICIES.path(name=f"e2e-{namespace}"), fixed)

    eventually(lambda: ready(kube, namespace, "app1-pki"), 60, "the Pki to become Ready")
    issued = eventually(lambda: events_on(kube, pki, "Issued"), 30, "a Normal Issued Event")
    assert issued[0]["type"] == "Normal"
    (resolution,) = eventually(
        lambda: events_on(kube, pod, "Issued"), 30, "the Pod told it is over"
    )
    assert resolution["type"] == "Normal"


def test_every_way_of_consuming_reaches_the_pods(
    control_plane: ControlPlane, kube: Kube, issuer: LocalIssuer, namespace: str
) -> None:
    secret = "denied-pki-tls"
    specs: dict[str, dict[str, Any]] = {
        "volume": volume(secret),
        "projected": {
            "volumes": [{"name": "p", "projected": {"sources": [{"secret": {"name": secret}}]}}]
        },
        "env": {
            "containers": [
                container(
                    env=[
                        {
                            "name": "C",
                            "valueFrom": {"secretKeyRef": {"name": secret, "key": "ca.crt"}},
                        }
                    ]
                )
            ]
        },
        "env-from": {"containers": [container(envFrom=[{"secretRef": {"name": secret}}])]},
    }
    consumers = {name: create_pod(kube, namespace, name, spec) for name, spec in specs.items()}
    bystander = create_pod(kube, namespace, "bystander", volume("unrelated-tls"))
    other_namespace = f"{namespace}-other"
    control_plane.kubectl("create", "namespace", other_namespace)
    try:
        elsewhere = create_pod(kube, other_namespace, "volume", volume(secret))
        create_pki(kube, namespace, "denied-pki", serviceName="not-allowed")
        for name, pod in consumers.items():
            told = _told(kube, pod, "NotAllowed")
            eventually(told, 60, f"Pod {name} to be told")
        assert events_on(kube, bystander) == []
        assert events_on(kube, elsewhere) == []
    finally:
        delete_namespace(control_plane, other_namespace)


def _told(kube: Kube, obj: dict[str, Any], reason: str) -> Callable[[], list[dict[str, Any]]]:
    return lambda: events_on(kube, obj, reason)


def test_a_secret_conflict_reaches_the_pods(
    kube: Kube, issuer: LocalIssuer, namespace: str
) -> None:
    kube.create(
        SECRETS.path(namespace),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "taken-tls"},
            "type": "Opaque",
            "stringData": {"owner": "someone else"},
        },
    )
    pod = create_pod(kube, namespace, "web", volume("taken-tls"))
    create_pki(kube, namespace, "taken", serviceName="app1", secretName="taken-tls")
    (event,) = eventually(lambda: events_on(kube, pod, "SecretConflict"), 60, "SecretConflict")
    assert event["type"] == "Warning"
    assert "taken-tls" in event["message"]


def test_a_missing_ca_reaches_the_pods(kube: Kube, issuer: LocalIssuer, namespace: str) -> None:
    settings = issuer.settings
    ca_path = SECRETS.path(settings.namespace, settings.ca_secret)
    kube.delete(ca_path)
    try:
        pod = create_pod(kube, namespace, "web", volume("needs-ca-tls"))
        create_pki(kube, namespace, "needs-ca", serviceName="app1", secretName="needs-ca-tls")
        (event,) = eventually(lambda: events_on(kube, pod, "CAUnavailable"), 60, "CAUnavailable")
        assert event["type"] == "Warning"
    finally:
        try:
            bootstrap_ca(kube, settings.namespace, settings.ca_secret, utc_now())
        except ApiError as error:
            pytest.fail(f"could not restore the CA: {error}")
    eventually(lambda: ready(kube, namespace, "needs-ca"), 60, "Ready once the CA is back")
