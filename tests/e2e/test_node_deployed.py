"""pkiwarden's own Deployments as Pods on the node, from its image (fixture ``pods_cluster``).

The Pods run as shipped (deploy/overlays/local changes the image name, the
pull policy and the webhook's replicas): readiness through their probes, the
API reached with the kubelet-projected ServiceAccount token. The API server
calls the webhook at its Pod's address. A killed webhook Pod makes the API
server refuse Pkis (failurePolicy Fail) until the replacement is Ready, with
nobody touching the registration; a deleted issuer leader hands its Lease to
the other replica, which issues nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from issuer.run import LEASE_NAME
from pkiwarden.local import install
from pkiwarden.local.controlplane import ControlPlane
from shared.kube.client import Kube
from tests.e2e.helpers import (
    TIMEOUT,
    delete_namespace,
    events_on,
    eventually,
    get,
    policy_body,
    serial,
    wait_ready,
    web_pki,
)

SYSTEM = install.SYSTEM_NAMESPACE
NAMESPACE = "deployed-e2e"
POLICY = "e2e-deployed"
WEBHOOK_CALL = 'failed calling webhook "pkis.pkiwarden.dev"'


def pods(plane: ControlPlane, app: str) -> list[dict[str, Any]]:
    """pkiwarden-system's Pods of one Deployment (label app.kubernetes.io/name), live ones only."""
    listed = plane.kubectl(
        "get", "pods", "-n", SYSTEM, "-l", f"app.kubernetes.io/name={app}", "-o", "json"
    )
    items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
    return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def apply_pki(plane: ControlPlane, name: str) -> tuple[int, str]:
    """``kubectl apply`` of a Pki as a user would; its exit status and what it printed."""
    body = json.dumps(web_pki(NAMESPACE, name))
    result = plane.kubectl("apply", "-f", "-", input=body, check=False)
    return result.returncode, result.stdout + result.stderr


def registration(plane: ControlPlane) -> list[dict[str, Any]]:
    """Where the ValidatingWebhookConfiguration sends each webhook's calls."""
    found = get(plane, "validatingwebhookconfiguration", "", "pkiwarden")
    assert found is not None, "the registration deploy/ ships is missing"
    return [hook["clientConfig"]["service"] for hook in found["webhooks"]]


def ready_endpoints(plane: ControlPlane) -> set[str]:
    """The addresses the API server may call the webhook at (its Service's ready endpoints)."""
    listed = plane.kubectl(
        "get",
        "endpointslices",
        "-n",
        SYSTEM,
        "-l",
        f"kubernetes.io/service-name={install.WEBHOOK_SERVICE}",
        "-o",
        "json",
    )
    return {
        address
        for endpoint_slice in json.loads(listed.stdout)["items"]
        for endpoint in endpoint_slice.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready")
        for address in endpoint["addresses"]
    }


def lease_holder(plane: ControlPlane) -> str:
    lease = get(plane, "lease", SYSTEM, LEASE_NAME)
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def issued_count(kube: Kube, pki: dict[str, Any]) -> int:
    """How many times the issuer said it issued this Pki's certificate (aggregated Events)."""
    return sum(int(event.get("count") or 1) for event in events_on(kube, pki, "Issued"))


@pytest.fixture(scope="module")
def tenant(pods_cluster: ControlPlane) -> Iterator[str]:
    """A namespace onboarded with deploy/tenants whose policy allows service "web"."""
    install.onboard(pods_cluster, NAMESPACE)
    policy = json.dumps(policy_body(POLICY, NAMESPACE, ["web"]))
    pods_cluster.kubectl("apply", "-f", "-", input=policy)
    try:
        yield NAMESPACE
    finally:
        pods_cluster.kubectl("delete", "pkipolicy", POLICY, "--ignore-not-found")
        delete_namespace(pods_cluster, NAMESPACE)


def test_pkiwarden_runs_as_ready_pods_from_its_image_with_the_projected_token(
    pods_cluster: ControlPlane,
) -> None:
    for app, replicas in (("pkiwarden-webhook", 1), ("pkiwarden-issuer", 2)):
        running = pods(pods_cluster, app)
        assert len(running) == replicas, [pod["metadata"]["name"] for pod in running]
        for pod in running:
            assert pod["status"]["phase"] == "Running" and is_ready(pod), pod["status"]
            (container,) = pod["spec"]["containers"]
            assert container["image"].startswith("localhost/pkiwarden:")
            assert container["imagePullPolicy"] == "Never"
            assert not any("kubeconfig" in arg for arg in container.get("args") or [])
            # The kubelet projects the token, the cluster CA and the namespace.
            projected = [v for v in pod["spec"]["volumes"] if "projected" in v]
            sources = [s for v in projected for s in v["projected"]["sources"]]
            assert any("serviceAccountToken" in source for source in sources), projected
            assert pod["spec"]["nodeName"] == "localhost"


def test_a_killed_webhook_pod_fails_applies_closed_until_its_replacement_is_ready(
    pods_cluster: ControlPlane, tenant: str
) -> None:
    plane = pods_cluster
    registered = registration(plane)
    (old,) = pods(plane, "pkiwarden-webhook")
    old_name = old["metadata"]["name"]
    plane.kubectl("delete", "pod", old_name, "-n", SYSTEM, "--grace-period=0", "--force")
    eventually(
        lambda: old["status"]["podIP"] not in ready_endpoints(plane),
        TIMEOUT,
        "the killed Pod to leave the webhook Service's endpoints",
    )

    refusals: list[str] = []

    def applied_once_replaced() -> str | None:
        status, output = apply_pki(plane, "after-kill")
        if status != 0:
            assert WEBHOOK_CALL in output, output
            refusals.append(output)
            return None
        # Nothing answered for the webhook before its replacement was Ready.
        assert any(is_ready(p) for p in pods(plane, "pkiwarden-webhook")), output
        return output

    eventually(applied_once_replaced, 90, "an apply to pass the replacement webhook Pod")
    assert refusals, "no apply was refused while the webhook Pod was gone"
    assert "pkiwarden-webhook" in refusals[0], refusals[0]
    (replacement,) = pods(plane, "pkiwarden-webhook")
    assert replacement["metadata"]["name"] != old_name
    assert registration(plane) == registered
    wait_ready(plane, tenant, "after-kill")


def test_deleting_the_issuer_leader_pod_hands_over_without_issuing_twice(
    pods_cluster: ControlPlane, tenant: str
) -> None:
    plane = pods_cluster
    kube = Kube.from_environment(str(plane.kubeconfig))
    plane.kubectl("apply", "-f", "-", input=json.dumps(web_pki(tenant, "before")))
    before = wait_ready(plane, tenant, "before")
    first_serial = serial(plane, tenant, "before-tls")
    leader = eventually(lambda: lease_holder(plane), TIMEOUT, "an issuer to lead")
    names = {pod["metadata"]["name"] for pod in pods(plane, "pkiwarden-issuer")}
    assert leader in names, (leader, names)

    plane.kubectl("delete", "pod", leader, "-n", SYSTEM, "--wait=false")
    (standby,) = names - {leader}
    eventually(lambda: lease_holder(plane) == standby, 60, f"{standby} to take the Lease")

    plane.kubectl("apply", "-f", "-", input=json.dumps(web_pki(tenant, "after")))
    after = wait_ready(plane, tenant, "after")
    assert serial(plane, tenant, "before-tls") == first_serial
    assert issued_count(kube, before) == 1
    assert issued_count(kube, after) == 1
