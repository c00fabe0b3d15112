"""Smoke tests: the local control plane is a real, pinned API server with RBAC on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pkiwarden.local import controlplane
from pkiwarden.local.controlplane import ControlPlane
from tests.e2e.helpers import create_namespace

GROUP = "pkiwarden.dev"
VERSION = "v1alpha1"


def pinned_kubernetes_version() -> str:
    """KUBERNETES_VERSION from deploy/local/versions.env: the one source of the pin."""
    env = controlplane.REPO_ROOT / "deploy" / "local" / "versions.env"
    for line in env.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "KUBERNETES_VERSION":
            return value.strip()
    raise AssertionError(f"KUBERNETES_VERSION missing from {env}")


@pytest.fixture(scope="module")
def admin(control_plane: ControlPlane) -> Iterator[Any]:
    with control_plane.api_client() as api:
        yield api


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> str:
    name: str = "smoke-" + request.node.name.removeprefix("test_").replace("_", "-")[:40]
    return create_namespace(control_plane, name)


def test_server_and_client_are_the_pinned_version(control_plane: ControlPlane) -> None:
    versions = json.loads(control_plane.kubectl("version", "--output=json").stdout)
    pinned = pinned_kubernetes_version()
    assert versions["serverVersion"]["gitVersion"] == pinned
    assert versions["clientVersion"]["gitVersion"] == pinned


def test_admin_is_authenticated_by_client_certificate(control_plane: ControlPlane) -> None:
    whoami = json.loads(control_plane.kubectl("auth", "whoami", "--output=json").stdout)
    assert whoami["status"]["userInfo"]["username"] == "pkiwarden-admin"
    assert "system:masters" in whoami["status"]["userInfo"]["groups"]


def test_crds_are_established(crds: set[str], admin: Any) -> None:
    assert crds == {f"pkis.{GROUP}", f"pkipolicies.{GROUP}", f"pkiauthorities.{GROUP}"}
    extensions = client.ApiextensionsV1Api(admin)
    for name in crds:
        status = extensions.read_custom_resource_definition(name).status
        assert status is not None and status.conditions
        conditions = {c.type: c.status for c in status.conditions}
        assert conditions.get("Established") == "True", (name, conditions)


def test_objects_round_trip_through_the_api(
    control_plane: ControlPlane, crds: set[str], namespace: str, admin: Any
) -> None:
    manifest = f"""
apiVersion: {GROUP}/{VERSION}
kind: Pki
metadata: {{name: app1, namespace: {namespace}}}
spec: {{serviceName: app1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: app1, namespace: {namespace}}}
spec:
  containers:
  - name: app
    image: registry.invalid/app1:1
    volumeMounts: [{{name: tls, mountPath: /tls, readOnly: true}}]
  volumes:
  - name: tls
    secret: {{secretName: app1-tls}}
"""
    control_plane.kubectl("apply", "-f", "-", input=manifest)

    ns_status = client.CoreV1Api(admin).read_namespace(namespace).status
    assert ns_status is not None and ns_status.phase == "Active"
    pki = client.CustomObjectsApi(admin).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "pkis", "app1"
    )
    assert isinstance(pki, dict)
    assert pki["kind"] == "Pki"
    assert pki["spec"] == {"serviceName": "app1"}
    pod = client.CoreV1Api(admin).read_namespaced_pod("app1", namespace)
    # No kubelet runs, so the Pod is accepted and stays Pending.
    assert pod.status is not None and pod.status.phase == "Pending"
    assert pod.spec is not None and pod.spec.volumes is not None
    assert [v.secret.secret_name for v in pod.spec.volumes if v.secret] == ["app1-tls"]


def _list_secrets(api: Any, namespace: str) -> int:
    """HTTP status of listing Secrets in ``namespace``."""
    try:
        client.CoreV1Api(api).list_namespaced_secret(namespace)
    except ApiException as error:
        return int(error.status)
    return 200


def test_service_account_token_is_subject_to_rbac(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    control_plane.kubectl("create", "serviceaccount", "reader", "--namespace", namespace)
    kubeconfig = controlplane.service_account_kubeconfig(
        control_plane, namespace, "reader", tmp_path / "reader.kubeconfig"
    )
    whoami = json.loads(
        control_plane.kubectl("auth", "whoami", "--output=json", kubeconfig=kubeconfig).stdout
    )
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:reader"

    with control_plane.api_client(kubeconfig) as reader:
        assert _list_secrets(reader, namespace) == 403
        denied = control_plane.kubectl(
            "get", "secrets", "--namespace", namespace, kubeconfig=kubeconfig, check=False
        )
        assert denied.returncode != 0
        assert 'cannot list resource "secrets"' in denied.stderr

        control_plane.kubectl(
            "create", "role", "read-secrets", "--namespace", namespace,
            "--verb=get,list", "--resource=secrets",
        )  # fmt: skip
        control_plane.kubectl(
            "create", "rolebinding", "reader-reads-secrets", "--namespace", namespace,
            "--role=read-secrets", f"--serviceaccount={namespace}:reader",
        )  # fmt: skip
        # The RBAC authorizer reads Roles from an informer cache: allow it to catch up.
        deadline = time.monotonic() + 10
        while _list_secrets(reader, namespace) != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _list_secrets(reader, namespace) == 200
        # Only what the Role grants: Secrets in other namespaces stay forbidden.
        assert _list_secrets(reader, "default") == 403


def test_kubectl_explain_shows_the_schema_descriptions(
    control_plane: ControlPlane, crds: set[str]
) -> None:
    # The API server publishes a new CRD's OpenAPI a few seconds after it is Established.
    deadline = time.monotonic() + 30
    while True:
        result = control_plane.kubectl("explain", "pki.spec.serviceName", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.returncode == 0, result.stderr
    explained = result.stdout
    assert "A PkiPolicy must allow it for the namespace." in " ".join(explained.split())
