"""A CA rotation under two Pods that do mutual TLS with each other: not one handshake fails.

Each Pod runs ``deploy/local/images/tlsserver`` on the node with its Pki's
Secret mounted as its key pair and the namespace's trust ConfigMap
(``pkiwarden-ca.crt``) as the bundle it verifies its peer against, both ways:
as a server it requires a client certificate, as a client it dials the other
Pod every 100 ms with its own. The kubelet refreshes the mounted files; the
rotation's phases give it ``trustPropagation`` to do so. Both Pods' logs
record every failed handshake on either side, and a running count of the
successful ones.

The module runs its own issuer, CA Secret and PkiAuthority, so no other
module's CA is rotated.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509

from issuer.runtime.settings import Settings
from pkiwarden.local import controlplane, node
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from pkiwarden.local.node import Node
from shared.kube.client import PKI_POLICIES, Kube
from tests.e2e.helpers import (
    create_pki,
    create_pod,
    delete_namespace,
    eventually,
    pods_story,
    ready,
    running_issuer,
    secret_data,
    web_policy,
)

SYSTEM_NS = "pkiwarden-e2e-mtls"
AUTHORITY = "node-mtls"
CA_SECRET = "node-mtls-ca"
NAMESPACE = "node-mtls"
# Longer than the kubelet takes to refresh a mounted Secret or ConfigMap
# (syncFrequency 5 s locally, with up to half of it as jitter).
TRUST_PROPAGATION = "10s"
ROTATION_TIMEOUT = 180.0
USAGES = ["digital signature", "server auth", "client auth"]
COUNT = re.compile(r"handshakes with \S+: (\d+) succeeded, (\d+) failed")


@pytest.fixture(scope="module")
def issuer(control_plane: ControlPlane, kube: Kube, local_node: Node) -> Iterator[LocalIssuer]:
    settings = Settings(
        namespace=SYSTEM_NS,
        ca_secret=CA_SECRET,
        authority=AUTHORITY,
        workers=2,
        health_port=0,
        leader_elect=False,
    )
    with running_issuer(control_plane, settings, "issuer-mtls") as running:
        patch = {"spec": {"rotation": {"trustPropagation": TRUST_PROPAGATION, "reissueRate": 10}}}
        control_plane.kubectl("patch", "pkica", AUTHORITY, "--type=merge", "-p", json.dumps(patch))
        yield running


@pytest.fixture
def ns(control_plane: ControlPlane, kube: Kube, issuer: LocalIssuer) -> Iterator[str]:
    control_plane.kubectl("create", "namespace", NAMESPACE)
    kube.create(PKI_POLICIES.path(), web_policy(NAMESPACE, ["alpha", "beta"]))
    try:
        yield NAMESPACE
    finally:
        control_plane.kubectl("delete", "pkipolicy", NAMESPACE, "--ignore-not-found")
        delete_namespace(control_plane, NAMESPACE)


def mtls_pod(name: str, peer_name: str, peer: list[str]) -> dict[str, Any]:
    """Pod spec fields: serve ``name``'s certificate, dial the peer with it, trust the bundle."""
    return {
        "containers": [
            {
                "name": "app",
                "image": node.image_name("tlsserver"),
                "imagePullPolicy": "Never",
                "args": [
                    "-client-ca=/etc/trust/ca.crt",
                    "-ca=/etc/trust/ca.crt",
                    f"-server-name={peer_name}.{NAMESPACE}.svc",
                    "-every=100ms",
                    *peer,
                ],
                "volumeMounts": [
                    {"name": "tls", "mountPath": "/etc/tls", "readOnly": True},
                    {"name": "trust", "mountPath": "/etc/trust", "readOnly": True},
                    {"name": "peer", "mountPath": "/etc/peer", "readOnly": True},
                ],
            }
        ],
        "volumes": [
            {"name": "tls", "secret": {"secretName": f"{name}-tls"}},
            {"name": "trust", "configMap": {"name": "pkiwarden-ca.crt"}},
            {"name": "peer", "configMap": {"name": "peers", "optional": True}},
        ],
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
    }


def pod_ip(kube: Kube, name: str) -> str | None:
    got = kube.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
    return got["status"].get("podIP") if got["status"].get("phase") == "Running" else None


def logs(plane: ControlPlane, name: str) -> str:
    """The Pod's log, through the API server and the kubelet."""
    return plane.kubectl("logs", "-n", NAMESPACE, f"pod/{name}").stdout


def succeeded(plane: ControlPlane, name: str) -> int:
    counts = COUNT.findall(logs(plane, name))
    return int(counts[-1][0]) if counts else 0


def issued(kube: Kube, namespace: str, name: str) -> Callable[[], dict[str, Any] | None]:
    return lambda: ready(kube, namespace, name)


def at_least(plane: ControlPlane, name: str, count: int) -> Callable[[], bool]:
    """A probe: has Pod ``name`` logged ``count`` successful handshakes?"""
    return lambda: succeeded(plane, name) >= count


def failures(plane: ControlPlane, name: str) -> list[str]:
    return [
        line
        for line in logs(plane, name).splitlines()
        if "failed:" in line or "TLS handshake error" in line
    ]


def ca(plane: ControlPlane, *args: str) -> None:
    argv = controlplane.pkiwarden_argv("ca", *args, "--authority", AUTHORITY)
    subprocess.run(argv, env={**os.environ, **plane.env()}, capture_output=True, check=True)


def authority_status(kube: Kube) -> dict[str, Any]:
    found = kube.get(f"/apis/pkiwarden.dev/v1alpha1/pkiauthorities/{AUTHORITY}")
    return dict(found.get("status") or {})


def issuer_of(plane: ControlPlane, secret: str) -> x509.Name:
    leaf = x509.load_pem_x509_certificates(secret_data(plane, NAMESPACE, secret)["tls.crt"])[0]
    return leaf.issuer


def test_a_ca_rotation_under_two_pods_doing_mtls_fails_no_handshake(
    control_plane: ControlPlane, kube: Kube, ns: str
) -> None:
    for name in ("alpha", "beta"):
        # Each side is a server and a client: both extended key usages.
        create_pki(kube, ns, name, serviceName=name, dnsNames=[f"{name}.{ns}.svc"], usages=USAGES)
    for name in ("alpha", "beta"):
        eventually(issued(kube, ns, name), 60, f"Pki {name} to be issued")
    create_pod(kube, ns, "alpha", mtls_pod("alpha", "beta", ["-peer-file=/etc/peer/alpha"]))
    alpha = eventually(
        lambda: pod_ip(kube, "alpha"),
        90,
        "Pod alpha to run",
        explain=lambda: pods_story(control_plane, ns),
    )
    create_pod(kube, ns, "beta", mtls_pod("beta", "alpha", [f"-peer={alpha}:8443"]))
    beta = eventually(
        lambda: pod_ip(kube, "beta"),
        90,
        "Pod beta to run",
        explain=lambda: pods_story(control_plane, ns),
    )
    control_plane.kubectl(
        "create", "configmap", "peers", "-n", ns, f"--from-literal=alpha={beta}:8443"
    )
    for name in ("alpha", "beta"):
        eventually(at_least(control_plane, name, 10), 90, f"{name}'s first handshakes")
    old_ca = issuer_of(control_plane, "alpha-tls")
    before = {name: succeeded(control_plane, name) for name in ("alpha", "beta")}

    ca(control_plane, "rotate")
    phases: set[str] = set()

    def stable() -> dict[str, Any] | None:
        status = authority_status(kube)
        phases.add(str(status.get("phase")))
        done = status.get("phase") == "Stable" and len(status.get("trusted") or []) == 1
        return status if done and phases - {"Stable"} else None

    eventually(stable, ROTATION_TIMEOUT, "the rotation to complete", every=0.5)
    # Reissuing two Pkis at 10 per second is over too quickly to be seen polling.
    assert {"Propagating", "Retiring"} <= phases
    for secret in ("alpha-tls", "beta-tls"):
        assert issuer_of(control_plane, secret) != old_ca
    # The old CA has left the trust bundle: once the kubelet has refreshed the
    # mounted files (within 7.5 s), both Pods still handshake, both ways.
    at_stable = {name: succeeded(control_plane, name) for name in ("alpha", "beta")}
    for name in ("alpha", "beta"):
        eventually(
            at_least(control_plane, name, at_stable[name] + 100),
            90,
            f"{name}'s handshakes after the rotation",
        )
        assert succeeded(control_plane, name) > before[name]
        assert failures(control_plane, name) == []
