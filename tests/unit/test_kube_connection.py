"""Reading a kubeconfig or the Pod's service account without the kubernetes package."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from shared.kube import connection
from shared.kube.client import Kube
from shared.kube.connection import Connection, UnsupportedKubeconfigError


def kubeconfig(tmp_path: Path, user: str, cluster: str = "server: https://10.0.0.1:6443") -> str:
    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: b\n"
        "contexts:\n"
        "- {name: a, context: {cluster: one, user: nobody}}\n"
        "- {name: b, context: {cluster: two, user: me}}\n"
        "clusters:\n"
        "- {name: one, cluster: {server: 'https://wrong:1'}}\n"
        f"- name: two\n  cluster: {{{cluster}}}\n"
        f"users:\n- name: me\n  user: {{{user}}}\n"
    )
    return str(path)


def test_client_certificate_paths_are_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path,
        "client-certificate: certs/me.crt, client-key: certs/me.key",
        "server: 'https://10.0.0.1:6443/', certificate-authority: ca.crt",
    )
    read = connection.from_kubeconfig(path)
    assert read.host == "https://10.0.0.1:6443"
    assert read.ca_file == str(tmp_path / "ca.crt")
    assert read.cert_file == str(tmp_path / "certs/me.crt")
    assert read.key_file == str(tmp_path / "certs/me.key")
    assert read.verify
    assert read.token() is None


def test_embedded_data_goes_to_private_files(tmp_path: Path) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    data = base64.b64encode(pem).decode()
    path = kubeconfig(
        tmp_path,
        f"client-certificate-data: {data}, client-key-data: {data}",
        f"server: 'https://10.0.0.1:6443', certificate-authority-data: {data}",
    )
    read = connection.from_kubeconfig(path)
    for file in (read.ca_file, read.cert_file, read.key_file):
        assert file is not None
        assert Path(file).read_bytes() == pem
        assert Path(file).stat().st_mode & 0o077 == 0


def test_bearer_token_and_insecure(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path, "token: abc", "server: 'https://10.0.0.1:6443', insecure-skip-tls-verify: true"
    )
    read = connection.from_kubeconfig(path)
    assert read.token() == "Bearer abc"
    assert not read.verify


def test_token_file_is_read_again_after_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("first\n")
    clock = [1000.0]
    monkeypatch.setattr(connection.time, "monotonic", lambda: clock[0])
    read = connection.from_kubeconfig(kubeconfig(tmp_path, "tokenFile: token"))
    assert read.token() == "Bearer first"
    (tmp_path / "token").write_text("second\n")
    clock[0] += 30
    assert read.token() == "Bearer first"
    clock[0] += 31
    assert read.token() == "Bearer second"


@pytest.mark.parametrize(
    "user",
    [
        "exec: {apiVersion: client.authentication.k8s.io/v1, command: aws}",
        "auth-provider: {name: oidc}",
        "username: admin, password: secret",
    ],
)
def test_plugins_and_passwords_are_left_to_the_kubernetes_package(
    tmp_path: Path, user: str
) -> None:
    with pytest.raises(UnsupportedKubeconfigError):
        connection.from_kubeconfig(kubeconfig(tmp_path, user))


def test_several_files_are_left_to_the_kubernetes_package(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedKubeconfigError):
        connection.from_kubeconfig(f"{tmp_path / 'a'}:{tmp_path / 'b'}")


def test_a_missing_context_says_which(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no context named 'c'"):
        connection.from_kubeconfig(kubeconfig(tmp_path, "token: x"), context="c")


def test_in_cluster_reads_the_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("sa-token")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    read = connection.in_cluster(tmp_path)
    assert read.host == "https://[fd00::1]:443"
    assert read.ca_file == str(tmp_path / "ca.crt")
    assert read.token() == "Bearer sa-token"


def test_outside_a_pod_without_kubeconfig_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(RuntimeError, match="not in a Pod"):
        connection.in_cluster()


def test_the_client_sends_the_token_it_is_given() -> None:
    kube = Kube(Connection(host="https://10.0.0.1:6443", token=lambda: "Bearer xyz"))
    assert kube._headers("application/json", None)["Authorization"] == "Bearer xyz"
    anonymous = Kube(Connection(host="https://10.0.0.1:6443"))
    assert "Authorization" not in anonymous._headers("application/json", None)
