"""The command lines and client configurations of the local control plane's components.

Pure functions: what each of etcd, kube-apiserver, kube-controller-manager and
kube-scheduler is started with, and the kubeconfig each client gets. Starting
them, in order, is :mod:`pkiwarden.local.controlplane`'s job.

The Service network lives on loopback: ``--service-cluster-ip-range`` is a
/24 inside 127.0.0.0/8, so a Service's ClusterIP is an address this machine
already routes to itself. With no kube-proxy, the process standing in for a
Service's Pods listens on the ClusterIP and Service port itself, and the API
server reaches a Service-referenced webhook exactly as ``deploy/`` registers it.
"""

from __future__ import annotations

import base64
import ipaddress
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pkiwarden.local.certs import PkiFiles
from pkiwarden.local.readiness import LOOPBACK

CONTEXT = "pkiwarden-local"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Pods reach the API server at the node's bridge address (see apiserver_argv).


def service_range(rng: random.Random | None = None) -> str:
    """A random /24 in 127.100.0.0-127.254.255.0 for one control plane's Services.

    Random, so that control planes running side by side (tests, the demo)
    hand out different ClusterIPs and their webhooks never fight for an address.
    """
    pick = rng or random.SystemRandom()
    return f"127.{pick.randint(100, 254)}.{pick.randint(0, 255)}.0/24"


def kubernetes_service_ip(cidr: str) -> str:
    """The ClusterIP the API server gives its own ``kubernetes`` Service: the first address."""
    return str(ipaddress.ip_network(cidr)[1])


def etcd_argv(
    etcd: Path,
    data_dir: Path,
    client_port: int,
    peer_port: int,
    *,
    quota_backend_bytes: int | None = None,
) -> list[str]:
    """etcd for one throw-away member; fsync off because the data is disposable.

    ``quota_backend_bytes``: etcd's space limit (its default is 2 GiB); past it
    etcd raises an alarm and refuses every write, so a cluster seeded to the size
    of ``make bench-scale SCALE=10`` needs more.
    """
    client = f"http://{LOOPBACK}:{client_port}"
    peer = f"http://{LOOPBACK}:{peer_port}"
    quota = [] if quota_backend_bytes is None else [f"--quota-backend-bytes={quota_backend_bytes}"]
    return [
        str(etcd),
        "--name=default",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--unsafe-no-fsync",
        *quota,
    ]


def apiserver_argv(
    apiserver: Path,
    pki: PkiFiles,
    cert_dir: Path,
    port: int,
    etcd_port: int,
    *,
    service_cidr: str,
    for_pods: bool = False,
) -> list[str]:
    """kube-apiserver on loopback with client-certificate and service-account auth, RBAC on.

    The default admission plugins run, ServiceAccount and
    ValidatingAdmissionWebhook among them, plus NodeRestriction.

    ``for_pods``: pkiwarden runs as Pods on the node. The API server calls
    a webhook Service at the address of a ready endpoint (the Pod's) rather
    than at the ClusterIP, which nothing forwards without kube-proxy. It
    still listens on loopback alone: Pods, whose loopback is their own, reach
    it through the node's relay on the bridge's address (``relay.py``).
    """
    pods = ["--enable-aggregator-routing=true"] if for_pods else []
    return [
        str(apiserver),
        f"--bind-address={LOOPBACK}",
        *pods,
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--etcd-servers=http://{LOOPBACK}:{etcd_port}",
        f"--cert-dir={cert_dir}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        # The Node authorizer and NodeRestriction keep a kubelet to its own
        # node and the Pods bound to it, as on a cluster.
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        # The kubelet serves on loopback only; its node's Hostname address is
        # "localhost", so that is the address the API server dials.
        f"--kubelet-client-certificate={pki.kubelet_client_cert}",
        f"--kubelet-client-key={pki.kubelet_client_key}",
        f"--kubelet-certificate-authority={pki.ca_cert}",
        "--kubelet-preferred-address-types=Hostname",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={service_cidr}",
        # The reconciler of the "kubernetes" Service's endpoints refuses a
        # loopback address, and nothing in-cluster could use it anyway.
        "--endpoint-reconciler-type=none",
        "--allow-privileged=true",
        "--profiling=false",
    ]


def _component_argv(binary: Path, kubeconfig: Path, cert_dir: Path, port: int) -> list[str]:
    """What the controller-manager and the scheduler share: identity, health port, one replica.

    The same kubeconfig authenticates them to the API server and lets them
    check who calls their own port (delegated authentication and
    authorization); with one replica there is nothing to elect.
    """
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def controller_manager_argv(
    binary: Path, pki: PkiFiles, kubeconfig: Path, cert_dir: Path, port: int, *, service_cidr: str
) -> list[str]:
    """kube-controller-manager as ``system:kube-controller-manager``.

    Each controller uses its own ServiceAccount's credentials, as on a
    cluster; the service-account key lets the token and service-account
    controllers run, and the CA is what ``kube-root-ca.crt`` publishes.
    """
    return [
        *_component_argv(binary, kubeconfig, cert_dir, port),
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_cert}",
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        f"--service-cluster-ip-range={service_cidr}",
    ]


def scheduler_argv(binary: Path, kubeconfig: Path, cert_dir: Path, port: int) -> list[str]:
    """kube-scheduler as ``system:kube-scheduler``.

    With no node registered, every Pod stays Pending with a FailedScheduling
    Event, as on a cluster that has no room.
    """
    return _component_argv(binary, kubeconfig, cert_dir, port)


def kubeconfig_document(
    server: str, ca_pem: bytes, user: str, credentials: Mapping[str, str]
) -> dict[str, Any]:
    """A single-context kubeconfig; material is embedded so the file can be copied alone."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": dict(credentials)}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
    }


def client_certificate_credentials(cert: Path, key: Path) -> dict[str, str]:
    """The ``user`` of a kubeconfig that authenticates with a client certificate."""
    return {
        "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(key.read_bytes()).decode(),
    }
