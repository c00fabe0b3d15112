"""Pods on the node mount pkiwarden's Secrets and serve them: what users actually meet.

A real kubelet runs them (``local_node``): a Pod whose Pki fails waits in
``ContainerCreating`` with the kubelet's own ``FailedMount`` next to
pkiwarden's Warning, ``why`` names the Secret it waits for, and it runs once
the Pki is fixed; a certificate re-issued while the Pod runs reaches its
mounted files and its server presents it without a restart. The server is
``deploy/local/images/tlsserver``, which reads its key pair on every
handshake; the tests dial the Pod's address on the node's bridge.
"""

from __future__ import annotations

import itertools
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from issuer.runtime.settings import Settings
from pkiwarden.local import node
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from pkiwarden.local.node import Node
from shared.certificates import serial_hex
from shared.kube.client import EVENTS, PKI_POLICIES, PKIS, PODS, Kube
from tests.e2e.helpers import (
    create_pki,
    create_pod,
    delete_namespace,
    events_on,
    eventually,
    ready,
    running_issuer,
    secret_data,
    web_policy,
    why,
)

ISSUER_NAMESPACE = "pkiwarden-e2e-node"
# The kubelet re-reads a mounted Secret on each Pod sync (syncFrequency 5 s
# locally) and retries a failed mount with a backoff that starts at 0.5 s.
POD_TIMEOUT = 90.0
_counter = itertools.count()


@pytest.fixture(scope="module")
def issuer(control_plane: ControlPlane, kube: Kube, local_node: Node) -> Iterator[LocalIssuer]:
    settings = Settings(namespace=ISSUER_NAMESPACE, workers=2, health_port=0)
    with running_issuer(control_plane, settings, "issuer-node") as running:
        yield running


@pytest.fixture
def ns(control_plane: ControlPlane, kube: Kube, issuer: LocalIssuer) -> Iterator[str]:
    """A namespace whose policy allows Service "web" (and ``*.<ns>.example.test``)."""
    name = f"node-pods-{next(_counter)}"
    control_plane.kubectl("create", "namespace", name)
    kube.create(PKI_POLICIES.path(), web_policy(name, ["web"]))
    try:
        yield name
    finally:
        control_plane.kubectl("delete", "pkipolicy", name, "--ignore-not-found")
        delete_namespace(control_plane, name)


def tls_server(secret: str) -> dict[str, Any]:
    """Pod spec fields: the local TLS server image serving the key pair of ``secret``."""
    return {
        "containers": [
            {
                "name": "app",
                "image": node.image_name("tlsserver"),
                "imagePullPolicy": "Never",
                "ports": [{"name": "https", "containerPort": 8443}],
                "readinessProbe": {
                    "httpGet": {"port": "https", "scheme": "HTTPS"},
                    "periodSeconds": 1,
                },
                "volumeMounts": [{"name": "tls", "mountPath": "/etc/tls", "readOnly": True}],
            }
        ],
        "volumes": [{"name": "tls", "secret": {"secretName": secret}}],
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
    }


def pod(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return kube.get(PODS.path(namespace, name))


def running_and_ready(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    got = pod(kube, namespace, name)
    conditions = {c["type"]: c["status"] for c in got["status"].get("conditions") or []}
    return got if conditions.get("Ready") == "True" else None


def waiting_reason(obj: dict[str, Any]) -> str | None:
    statuses = obj["status"].get("containerStatuses") or [{}]
    return ((statuses[0].get("state") or {}).get("waiting") or {}).get("reason")


def kubelet_events(kube: Kube, obj: dict[str, Any], reason: str) -> list[dict[str, Any]]:
    """The kubelet's Events of ``reason`` on ``obj``."""
    metadata = obj["metadata"]
    selector = f"involvedObject.uid={metadata['uid']},reason={reason}"
    page = kube.get(EVENTS.path(metadata["namespace"]), params={"fieldSelector": selector})
    return [
        event
        for event in page.get("items") or []
        if (event.get("source") or {}).get("component") == "kubelet"
    ]


def presented(pod_ip: str, server_name: str, ca_pem: bytes) -> x509.Certificate:
    """The certificate the Pod's server presents to a client that verifies it by name."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    with (
        socket.create_connection((pod_ip, 8443), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_a_pod_waits_for_its_secret_in_container_creating_then_runs(
    control_plane: ControlPlane, kube: Kube, ns: str
) -> None:
    pki = create_pki(kube, ns, "web", serviceName="webb", dnsNames=[f"webb.{ns}.svc"])
    eventually(lambda: events_on(kube, pki, "NotAllowed"), 60, "the Pki's first failure")
    created = create_pod(kube, ns, "web", tls_server("web-tls"))

    failed_mount = eventually(
        lambda: kubelet_events(kube, created, "FailedMount"), 60, "the kubelet's FailedMount"
    )
    assert 'secret "web-tls" not found' in failed_mount[0]["message"]
    told = eventually(lambda: events_on(kube, created), 60, "pkiwarden's Warning on the Pod")
    assert told[0]["type"] == "Warning"
    assert '"webb"' in told[0]["message"]
    waiting = pod(kube, ns, "web")
    assert waiting["spec"]["nodeName"] == "localhost"
    assert waiting["status"]["phase"] == "Pending"
    assert waiting_reason(waiting) == "ContainerCreating"

    status, output = why(control_plane, control_plane.kubeconfig, "pod/web", "-n", ns)
    assert status == 1, output
    # The Secret the kubelet waits for, who writes it, and the fix.
    assert "Secret web-tls (volume tls): does not exist; written by Pki web" in output
    assert 'did you mean "web"?' in output

    kube.patch(
        PKIS.path(ns, "web"), {"spec": {"serviceName": "web", "dnsNames": [f"web.{ns}.svc"]}}
    )
    eventually(lambda: ready(kube, ns, "web"), 60, "the fixed Pki to be issued")
    started = eventually(
        lambda: running_and_ready(kube, ns, "web"), POD_TIMEOUT, "the Pod to run and be Ready"
    )
    data = secret_data(control_plane, ns, "web-tls")
    served = presented(started["status"]["podIP"], f"web.{ns}.svc", data["ca.crt"])
    issued = x509.load_pem_x509_certificates(data["tls.crt"])[0]
    assert serial_hex(served.serial_number) == serial_hex(issued.serial_number)


def test_a_reissued_certificate_reaches_a_running_pod_without_a_restart(
    control_plane: ControlPlane, kube: Kube, ns: str
) -> None:
    create_pki(kube, ns, "web", serviceName="web", dnsNames=[f"web.{ns}.svc"])
    eventually(lambda: ready(kube, ns, "web"), 60, "the Pki to be issued")
    create_pod(kube, ns, "web", tls_server("web-tls"))
    started = eventually(
        lambda: running_and_ready(kube, ns, "web"), POD_TIMEOUT, "the Pod to run and be Ready"
    )
    pod_ip = started["status"]["podIP"]
    ca_pem = secret_data(control_plane, ns, "web-tls")["ca.crt"]
    first = presented(pod_ip, f"web.{ns}.svc", ca_pem)

    extra = f"www.{ns}.example.test"
    kube.patch(PKIS.path(ns, "web"), {"spec": {"dnsNames": [f"web.{ns}.svc", extra]}})

    def reissued_served() -> x509.Certificate | None:
        served = presented(pod_ip, f"web.{ns}.svc", ca_pem)
        return served if served.serial_number != first.serial_number else None

    served = eventually(reissued_served, POD_TIMEOUT, "the Pod to serve the re-issued certificate")
    issued = x509.load_pem_x509_certificates(secret_data(control_plane, ns, "web-tls")["tls.crt"])
    assert served.serial_number == issued[0].serial_number
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert extra in names.get_values_for_type(x509.DNSName)
    after = pod(kube, ns, "web")
    assert after["metadata"]["uid"] == started["metadata"]["uid"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
