"""What the local control plane's components are started with, and how deploy/ is run locally."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import pytest

from pkiwarden.local import components
from pkiwarden.local.certs import PkiFiles
from pkiwarden.local.cli import helpers_to_run
from pkiwarden.local.install import install_commands, with_flags

PKI = PkiFiles(*(Path(f"/pki/{n}") for n in range(len(PkiFiles.__dataclass_fields__))))


def test_service_ranges_are_on_loopback_and_differ_between_instances() -> None:
    rng = random.Random(7)
    ranges = {components.service_range(rng) for _ in range(50)}
    assert len(ranges) > 45
    for cidr in ranges:
        network = ipaddress.ip_network(cidr)
        assert network.prefixlen == 24
        assert network.subnet_of(ipaddress.ip_network("127.0.0.0/8"))
        assert not network.overlaps(ipaddress.ip_network("127.0.0.0/24"))


def test_the_kubernetes_service_takes_the_first_address() -> None:
    assert components.kubernetes_service_ip("127.201.7.0/24") == "127.201.7.1"


def test_the_api_server_keeps_every_default_admission_plugin() -> None:
    argv = components.apiserver_argv(
        Path("kube-apiserver"), PKI, Path("/pki"), 6443, 2379, service_cidr="127.201.7.0/24"
    )
    assert not any(arg.startswith("--disable-admission-plugins") for arg in argv)
    assert "--service-cluster-ip-range=127.201.7.0/24" in argv
    assert "--authorization-mode=Node,RBAC" in argv
    assert "--enable-admission-plugins=NodeRestriction" in argv


def test_the_api_server_dials_kubelets_by_their_loopback_hostname_and_verifies_them() -> None:
    argv = components.apiserver_argv(
        Path("kube-apiserver"), PKI, Path("/pki"), 6443, 2379, service_cidr="127.201.7.0/24"
    )
    assert "--kubelet-preferred-address-types=Hostname" in argv
    assert f"--kubelet-certificate-authority={PKI.ca_cert}" in argv
    assert f"--kubelet-client-certificate={PKI.kubelet_client_cert}" in argv


def test_the_controller_manager_can_run_the_token_and_service_account_controllers() -> None:
    argv = components.controller_manager_argv(
        Path("kcm"), PKI, Path("kcm.kubeconfig"), Path("/kcm"), 10257, service_cidr="127.1.2.0/24"
    )
    assert f"--service-account-private-key-file={PKI.sa_key}" in argv
    assert f"--root-ca-file={PKI.ca_cert}" in argv
    assert "--use-service-account-credentials=true" in argv
    assert "--leader-elect=false" in argv
    assert "--kubeconfig=kcm.kubeconfig" in argv


def test_with_flags_replaces_what_a_pod_would_supply_and_keeps_the_rest() -> None:
    args = ["webhook", "serve", "--namespace=pkiwarden-system", "--port=8443", "--cert-dir=/run"]
    assert with_flags(args, port="443", cert_dir="/tmp/tls", host="127.9.9.9") == [
        "webhook",
        "serve",
        "--namespace=pkiwarden-system",
        "--port=443",
        "--cert-dir=/tmp/tls",
        "--host=127.9.9.9",
    ]


def test_install_is_the_shipped_overlay_then_one_onboarding_per_tenant() -> None:
    assert install_commands(["app1"]) == [
        ["apply", "-k", "deploy/overlays/dev"],
        ["create", "namespace", "app1", "--save-config"],
        ["apply", "-n", "app1", "-f", "deploy/tenants"],
    ]
    assert install_commands(root=Path("/repo")) == [["apply", "-k", "/repo/deploy/overlays/dev"]]


@pytest.mark.parametrize(
    ("with_webhook", "with_issuer", "run"),
    [
        (False, False, ()),
        (True, False, ("webhook",)),
        (False, True, ("webhook", "issuer")),  # deploy/ registers the webhook: it must serve
        (True, True, ("webhook", "issuer")),
    ],
    ids=["neither", "--with-webhook", "--with-issuer", "both"],
)
def test_every_combination_of_local_up_flags_runs_what_deploy_needs(
    with_webhook: bool, with_issuer: bool, run: tuple[str, ...]
) -> None:
    assert helpers_to_run(with_webhook, with_issuer) == run


def test_etcd_keeps_its_default_quota_unless_asked_for_more() -> None:
    argv = components.etcd_argv(Path("etcd"), Path("/data"), 2379, 2380)
    assert not any(arg.startswith("--quota-backend-bytes") for arg in argv)
    eight_gib = components.etcd_argv(
        Path("etcd"), Path("/data"), 2379, 2380, quota_backend_bytes=8 * 1024**3
    )
    assert "--quota-backend-bytes=8589934592" in eight_gib
