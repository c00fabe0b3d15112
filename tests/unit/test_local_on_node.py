"""How pkiwarden's Deployments are run as Pods on the local node: the pure parts."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from pkiwarden.local import components, on_node
from pkiwarden.local.certs import PkiFiles, new_ca, new_serving_cert
from pkiwarden.local.controlplane import BinDir, ControlPlane
from pkiwarden.local.install import install_commands

PKI = PkiFiles(*(Path(f"/pki/{n}") for n in range(len(PkiFiles.__dataclass_fields__))))
NOW = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)


def plane(pod_subnet: str | None, dir: Path = Path("/tmp/instance")) -> ControlPlane:
    paths = [Path(f"/bin/{name}") for name in BinDir.__dataclass_fields__]
    return ControlPlane(
        dir=dir,
        kubeconfig=dir / "kubeconfig",
        server="https://127.0.0.1:40123",
        ca_cert=dir / "ca.crt",
        admin_cert=dir / "admin.crt",
        admin_key=dir / "admin.key",
        service_cidr="127.201.7.0/24",
        binaries=BinDir(*paths),
        pod_subnet=pod_subnet,
    )


def test_an_api_server_for_pods_stays_on_loopback_and_calls_webhooks_at_their_pods() -> None:
    def argv(for_pods: bool) -> list[str]:
        return components.apiserver_argv(
            Path("kube-apiserver"),
            PKI,
            Path("/pki"),
            6443,
            2379,
            service_cidr="127.201.7.0/24",
            for_pods=for_pods,
        )

    # Pods reach it through the node's relay on the bridge's address.
    assert "--bind-address=127.0.0.1" in argv(True)
    assert "--enable-aggregator-routing=true" in argv(True)
    # --no-node: loopback only, and a webhook process on the ClusterIP is called there.
    assert "--bind-address=127.0.0.1" in argv(False)
    assert not any(arg.startswith("--enable-aggregator-routing") for arg in argv(False))


def test_the_serving_certificate_names_the_bridge_pods_dial() -> None:
    cert = x509.load_pem_x509_certificate(
        new_serving_cert(new_ca(NOW), NOW, "127.201.7.1", ["10.244.9.1"]).cert_pem
    )
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert ips == {"127.0.0.1", "127.201.7.1", "10.244.9.1"}


def test_pods_reach_the_api_server_at_the_bridge_and_its_port() -> None:
    assert plane("10.244.9.0/24").pod_api_address == ("10.244.9.1", 40123)
    assert plane("10.244.9.0/24").for_pods and not plane(None).for_pods


def test_podman_names_a_local_build_under_localhost() -> None:
    assert on_node.podman_name("pkiwarden:0.2.0") == "localhost/pkiwarden:0.2.0"
    assert on_node.podman_name("localhost/pkiwarden:0.2.0") == "localhost/pkiwarden:0.2.0"
    assert on_node.podman_name("registry.example/pkiwarden:1") == "registry.example/pkiwarden:1"
    assert on_node.podman_name("team/pkiwarden:1") == "localhost/team/pkiwarden:1"


def test_the_cluster_overlay_tells_each_api_client_where_the_api_server_is(tmp_path: Path) -> None:
    overlay: dict[str, Any] = on_node.cluster_overlay(plane("10.244.9.0/24", tmp_path))
    (resource,) = overlay["resources"]
    assert (tmp_path / "deploy" / resource).resolve() == on_node.LOCAL_OVERLAY
    patched = set()
    for patch in overlay["patches"]:
        body = yaml.safe_load(patch["patch"])
        (container,) = body["spec"]["template"]["spec"]["containers"]
        assert container["env"] == [
            {"name": "KUBERNETES_SERVICE_HOST", "value": "10.244.9.1"},
            {"name": "KUBERNETES_SERVICE_PORT", "value": "40123"},
        ]
        assert ipaddress.ip_address(container["env"][0]["value"]).is_private
        patched.add((body["kind"], body["metadata"]["name"], container["name"]))
    assert patched == {
        ("Deployment", "pkiwarden-webhook", "webhook"),
        ("Deployment", "pkiwarden-issuer", "issuer"),
        ("Job", "pkiwarden-bootstrap-ca", "bootstrap-ca"),
    }


def test_an_overlay_outside_the_repository_is_applied_by_its_own_path(tmp_path: Path) -> None:
    assert install_commands(["app1"], overlay=tmp_path)[0] == ["apply", "-k", str(tmp_path)]
