"""The seed's story, end to end: the issuer process tells consuming Pods why there is no Secret.

The issuer runs as its own process (leader election on, its own CA namespace)
against the real control plane; no webhook is registered, which is exactly how
a Pki the policy does not allow gets past admission.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from issuer.act.bootstrap_ca import bootstrap_ca
from issuer.local import start_local_issuer
from issuer.reporting.recorder import COMPONENT
from issuer.settings import Settings
from pkiwarden import controlplane
from pkiwarden import local_processes as procs
from pkiwarden.controlplane import ControlPlane
from shared.clock import utc_now
from shared.kube.client import EVENTS, PKI_POLICIES, PKIS, PODS, SECRETS, ApiError, Kube
from tests.e2e.conftest import delete_namespace

T = TypeVar("T")
_counter = itertools.count()


@dataclass(frozen=True)
class RunningIssuer:
    name: str
    pid: int
    health_port: int
    settings: Settings


def eventually(probe: Callable[[], T | None], timeout: float, what: str, every: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}", pytrace=False)
        time.sleep(every)


def start_issuer(plane: ControlPlane, name: str, settings: Settings) -> RunningIssuer:
    """Start ``pkiwarden issuer run`` as a recorded process and learn its health port."""
    pid = start_local_issuer(plane, settings, name=name)
    log = procs.log_path(plane.dir, name)

    def port() -> int | None:
        match = re.search(r"listening on port (\d+)", log.read_text() if log.exists() else "")
        return int(match.group(1)) if match else None

    return RunningIssuer(name, pid, eventually(port, 60, f"{name} to serve health"), settings)


def stop_issuer(plane: ControlPlane, issuer: RunningIssuer) -> None:
    controlplane.stop_process(plane.dir, issuer.name)


def events_on(kube: Kube, obj: dict[str, Any], reason: str | None = None) -> list[dict[str, Any]]:
    metadata = obj["metadata"]
    selector = f"involvedObject.uid={metadata['uid']}"
    if reason:
        selector += f",reason={reason}"
    page = kube.get(EVENTS.path(metadata["namespace"]), params={"fieldSelector": selector})
    return list(page.get("items") or [])


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "registry.invalid/app:1", **fields}


def create_pod(kube: Kube, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container()], **spec},
    }
    return kube.create(PODS.path(namespace), body)


def volume(secret: str) -> dict[str, Any]:
    return {"volumes": [{"name": "tls", "secret": {"secretName": secret}}]}


def create_pki(kube: Kube, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return kube.create(PKIS.path(namespace), body)


def policy_body(name: str, namespace: str, services: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": name},
        "spec": {"namespaces": [namespace], "allowedServiceNames": services},
    }


def ready(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    pki = kube.get(PKIS.path(namespace, name))
    for condition in (pki.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return pki
    return None


@pytest.fixture(scope="module")
def issuer(control_plane: ControlPlane, kube: Kube) -> Iterator[RunningIssuer]:
    settings = Settings(namespace="pkiwarden-e2e-events", workers=2, health_port=0)
    running = start_issuer(control_plane, "issuer-events", settings)
    try:
        yield running
    finally:
        stop_issuer(control_plane, running)


@pytest.fixture
def namespace(control_plane: ControlPlane, kube: Kube) -> Iterator[str]:
    name = f"seed-{next(_counter)}"
    control_plane.kubectl("create", "namespace", name)
    policy = policy_body(f"e2e-{name}", name, ["app1"])
    kube.create(PKI_POLICIES.path(), policy)
    yield name
    control_plane.kubectl("delete", "pkipolicy", f"e2e-{name}", "--ignore-not-found")
    delete_namespace(control_plane, name)


def test_the_seed_story(
    control_plane: ControlPlane, kube: Kube, issuer: RunningIssuer, namespace: str
) -> None:
    pod = create_pod(kube, namespace, "web", volume("app1-pki-tls"))
    pki = create_pki(kube, namespace, "app1-pki", serviceName="appp1")

    def warning() -> dict[str, Any] | None:
        found = events_on(kube, pod, "NotAllowed")
        return found[0] if found else None

    event = eventually(warning, 60, "a NotAllowed Warning on the consuming Pod")
    assert event["type"] == "Warning"
    assert event["source"]["component"] == COMPONENT
    assert 'spec.serviceName: "appp1"' in event["message"]
    assert "Pki app1-pki" in event["message"]
    assert 'did you mean "app1"?' in event["message"]

    grown = eventually(
        lambda: [e for e in events_on(kube, pod, "NotAllowed") if e["count"] >= 3],
        60,
        "the Warning's count to grow with the retries",
    )
    assert len(events_on(kube, pod, "NotAllowed")) == 1, "retries must not create new objects"
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
    eventually(
        lambda: events_on(kube, late, "NotAllowed"), 90, "the late Pod to be told at a retry"
    )

    fixed = policy_body(f"e2e-{namespace}", namespace, ["app1", "appp1"])
    current = kube.get(PKI_POLICIES.path(name=f"e2e-{namespace}"))
    fixed["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    kube.replace(PKI_POLICIES.path(name=f"e2e-{namespace}"), fixed)

    eventually(lambda: ready(kube, namespace, "app1-pki"), 60, "the Pki to become Ready")
    issued = eventually(lambda: events_on(kube, pki, "Issued"), 30, "a Normal Issued Event")
    assert issued[0]["type"] == "Normal"
    assert events_on(kube, pod, "Issued") == []


def test_every_way_of_consuming_reaches_the_pods(
    control_plane: ControlPlane, kube: Kube, issuer: RunningIssuer, namespace: str
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
    kube: Kube, issuer: RunningIssuer, namespace: str
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


def test_a_missing_ca_reaches_the_pods(kube: Kube, issuer: RunningIssuer, namespace: str) -> None:
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
