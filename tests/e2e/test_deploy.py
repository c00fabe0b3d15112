"""deploy/ as a cluster admin would use it, and its RBAC proven under real tokens.

The demo runs the webhook and the issuer as Pods on the local node, under
the projected tokens of their own ServiceAccounts with exactly the RBAC of
deploy/rbac and deploy/tenants, so a missing verb fails the story here. It
runs on a cluster of its own: the webhook registration and the issuer's
Lease are cluster-wide singletons the other end-to-end tests also use.

The last of the demo's tests break its Pods: a killed webhook Pod makes the
API server refuse Pkis (failurePolicy Fail) until the replacement is Ready,
with nobody touching the registration; a deleted issuer leader hands its
Lease to the other replica, which issues nothing twice.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from issuer.run import LEASE_NAME
from pkiwarden.local import controlplane, install
from pkiwarden.local import processes as procs
from pkiwarden.local.controlplane import ControlPlane
from shared.kube.client import Kube
from tests.e2e.helpers import (
    TIMEOUT,
    delete_namespace,
    events_on,
    eventually,
    get,
    pods_story,
    policy_body,
    serial,
    wait_ready,
    web_pki,
)

REPO = controlplane.REPO_ROOT
WEBHOOK = "system:serviceaccount:pkiwarden-system:pkiwarden-webhook"
ISSUER = "system:serviceaccount:pkiwarden-system:pkiwarden-issuer"
BOOTSTRAP = "system:serviceaccount:pkiwarden-system:pkiwarden-bootstrap-ca"
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
def tenant(demo_plane: ControlPlane) -> Iterator[str]:
    """A namespace onboarded with deploy/tenants whose policy allows service "web"."""
    install.onboard(demo_plane, NAMESPACE)
    policy = json.dumps(policy_body(POLICY, NAMESPACE, ["web"]))
    demo_plane.kubectl("apply", "-f", "-", input=policy)
    try:
        yield NAMESPACE
    finally:
        demo_plane.kubectl("delete", "pkipolicy", POLICY, "--ignore-not-found")
        delete_namespace(demo_plane, NAMESPACE)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """Run `make demo`'s program on a fresh control plane; yields (dir, transcript)."""
    directory = tmp_path_factory.mktemp("demo") / "plane"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pkiwarden.local.demo", "--dir", str(directory)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        transcript = result.stdout + result.stderr
        assert result.returncode == 0, transcript
        yield directory, transcript
    finally:
        controlplane.down(directory)


@pytest.fixture(scope="module")
def demo_plane(demo_run: tuple[Path, str]) -> ControlPlane:
    plane = controlplane.running(demo_run[0])
    assert plane is not None, "the demo's control plane is not running"
    return plane


def test_demo_tells_the_story_under_service_account_tokens(demo_run: tuple[Path, str]) -> None:
    transcript = demo_run[1]
    assert 'admission webhook "pkis.pkiwarden.dev" denied the request' in transcript
    assert 'spec.serviceName: "appp1" is not allowed in namespace "app1"' in transcript
    assert 'did you mean "app1"?' in transcript
    assert "pki.pkiwarden.dev/app2-pki condition met" in transcript
    assert "DNS:app2.app2.svc, DNS:app2.app2.svc.cluster.local" in transcript
    # kubectl describe pod: the Warning from the issuer, with field, value and policy.
    describe = transcript.split("kubectl describe pod", 1)[1]
    assert "Warning  NotAllowed" in describe
    assert "pkiwarden-issuer" in describe
    assert 'spec.serviceName: "app2" in Pki app2-pki is not allowed' in describe
    assert "ask the platform team to allow it, or change spec.serviceName" in describe
    assert "Normal   Issued" in transcript.rsplit("kubectl describe pki", 1)[1]
    # The kubelet's own Event stands next to pkiwarden's: the Secret it waits for.
    assert "FailedMount  " in describe and "kubelet" in describe
    assert 'secret "app2-pki-tls" not found' in describe
    # After the fix the new Pod serves a certificate that verifies against the trust ConfigMap.
    handshake = transcript.rsplit("$ openssl s_client", 1)[1]
    assert "subject=CN = app2.app2.svc" in handshake
    assert "Verify return code: 0 (ok)" in handshake


def test_demo_asks_why_from_the_deployments_pod(demo_run: tuple[Path, str]) -> None:
    """``kubectl pkiwarden why`` on the ReplicaSet's Pod: the cause and fix, exit 1; then exit 0."""
    failing, fixed = demo_run[1].split("$ kubectl pkiwarden why pod/")[1:]
    assert re.match(r"app2-[a-z0-9]+-[a-z0-9]+ -n app2\nNOT READY: pod/app2-", failing), failing
    assert (
        'Fix: spec.serviceName: "app2" in Pki app2-pki is not allowed in namespace "app2"'
        in failing
    )
    assert "no selecting PkiPolicy allows service name 'app2'" in failing
    assert "(exit status 1)" in failing
    assert "\nREADY: pod/app2-" in fixed and "(exit status 0)" in fixed


def test_demo_reaches_the_webhook_through_its_service(demo_run: tuple[Path, str]) -> None:
    transcript = demo_run[1]
    service = (
        '{"name":"pkiwarden-webhook","namespace":"pkiwarden-system","path":"/validate","port":443}'
    )
    assert service in transcript
    assert re.search(
        r"pkiwarden-webhook\s+ClusterIP\s+127\.\d+\.\d+\.\d+\s+<none>\s+443/TCP", transcript
    )


def live_pods(plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    listed = json.loads(plane.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)
    return [pod for pod in listed["items"] if not pod["metadata"].get("deletionTimestamp")]


def test_the_app_pod_comes_from_its_deployment_and_runs(demo_plane: ControlPlane) -> None:
    (pod,) = live_pods(demo_plane, "app2")
    (owner,) = pod["metadata"]["ownerReferences"]
    assert owner["kind"] == "ReplicaSet" and owner["name"].startswith("app2-")
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["containers"][0]["image"] == "pkiwarden.local/tlsserver:dev"


def test_pkiwarden_ran_as_pods_under_their_service_accounts(demo_plane: ControlPlane) -> None:
    accounts = {
        pod["metadata"]["labels"]["app.kubernetes.io/name"]: pod["spec"]["serviceAccountName"]
        for pod in live_pods(demo_plane, install.SYSTEM_NAMESPACE)
        if "app.kubernetes.io/name" in pod["metadata"]["labels"]
    }
    assert accounts == {
        "pkiwarden-webhook": install.WEBHOOK_ACCOUNT,
        "pkiwarden-issuer": install.ISSUER_ACCOUNT,
    }
    # No process of this machine stands in for them, and no kubeconfig was written for them.
    for name in ("webhook", "issuer"):
        assert procs.read(demo_plane.dir, name) is None, name
        assert not (demo_plane.dir / f"{name}.kubeconfig").exists(), name
    lease = json.loads(
        demo_plane.kubectl(
            "get", "lease", "pkiwarden-issuer", "-n", install.SYSTEM_NAMESPACE, "-o", "json"
        ).stdout
    )
    assert lease["spec"]["holderIdentity"].startswith("pkiwarden-issuer-")
    for app, replicas in (("pkiwarden-webhook", 1), ("pkiwarden-issuer", 2)):
        running = pods(demo_plane, app)
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


def can_i(plane: ControlPlane, user: str, *args: str) -> bool:
    result = plane.kubectl("auth", "can-i", *args, f"--as={user}", check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


@pytest.mark.parametrize(
    ("user", "verb", "resource", "namespace", "allowed"),
    [
        # The webhook has no permission on a tenant's Secrets (list would return their keys).
        (WEBHOOK, "get", "secrets", "app2", False),
        (WEBHOOK, "list", "secrets", "app2", False),
        (WEBHOOK, "watch", "secrets", "app2", False),
        (WEBHOOK, "list", "secrets", "kube-system", False),
        (WEBHOOK, "get", "secrets/pkiwarden-ca", "pkiwarden-system", False),
        (WEBHOOK, "update", "secrets/pkiwarden-ca", "pkiwarden-system", False),
        (WEBHOOK, "patch", "secrets/pkiwarden-ca-next", "pkiwarden-system", False),
        (WEBHOOK, "list", "secrets", "pkiwarden-system", False),
        (WEBHOOK, "get", "secrets/pkiwarden-webhook-tls", "pkiwarden-system", True),
        # It publishes its CA certificate (no key) for scrapers.
        (WEBHOOK, "update", "configmaps/pkiwarden-webhook-ca", "pkiwarden-system", True),
        (WEBHOOK, "update", "configmaps/other", "pkiwarden-system", False),
        (WEBHOOK, "create", "pkis", "app2", False),
        # It reads RoleBindings (which namespaces are onboarded), and changes none.
        (WEBHOOK, "watch", "rolebindings", "app2", True),
        (WEBHOOK, "create", "rolebindings", "app2", False),
        # It lists PkiAuthorities (which exist, for spec.authority), and changes none.
        (WEBHOOK, "watch", "pkiauthorities", "", True),
        (WEBHOOK, "update", "pkiauthorities", "", False),
        (WEBHOOK, "patch", "validatingwebhookconfigurations/pkiwarden", "", True),
        (WEBHOOK, "patch", "validatingwebhookconfigurations/other", "", False),
        # The issuer writes Secrets only where a tenant binding lets it.
        (ISSUER, "create", "secrets", "app2", True),
        (ISSUER, "get", "secrets", "kube-system", False),
        (ISSUER, "list", "secrets", "kube-system", False),
        (ISSUER, "create", "secrets", "default", False),
        (ISSUER, "get", "secrets/pkiwarden-ca", "pkiwarden-system", True),
        (ISSUER, "get", "secrets/pkiwarden-webhook-tls", "pkiwarden-system", False),
        # delete: the Secret a Pki wrote before its secretName changed (checked to be ours).
        (ISSUER, "delete", "secrets", "app2", True),
        (ISSUER, "delete", "secrets", "kube-system", False),
        (ISSUER, "update", "pkis", "app2", False),
        (ISSUER, "patch", "pkis --subresource=status", "app2", True),
        (ISSUER, "update", "leases/pkiwarden-issuer", "pkiwarden-system", True),
        (ISSUER, "update", "leases/other", "pkiwarden-system", False),
        (ISSUER, "delete", "events", "app2", False),
        # It publishes the trust ConfigMap and no other, and rotates the CA in place.
        (ISSUER, "create", "configmaps", "app2", True),
        (ISSUER, "update", "configmaps/pkiwarden-ca.crt", "app2", True),
        (ISSUER, "update", "configmaps/other", "app2", False),
        (ISSUER, "delete", "configmaps/kube-root-ca.crt", "kube-system", False),
        (ISSUER, "update", "secrets/pkiwarden-ca", "pkiwarden-system", True),
        # It creates a generated authority's CA Secret: no bootstrap account writes one.
        (ISSUER, "create", "secrets", "pkiwarden-system", True),
        (ISSUER, "list", "secrets", "pkiwarden-system", False),
        # The bootstrap Job's one-time grant is gone once it has run (the demo ran it).
        (BOOTSTRAP, "create", "pkiauthorities", "", False),
        (BOOTSTRAP, "create", "secrets", "pkiwarden-system", False),
        (ISSUER, "patch", "pkiauthorities --subresource=status", "", True),
        (ISSUER, "update", "pkiauthorities", "", False),
        # /metrics: the processes ask the API server who a token is and what it may do.
        (WEBHOOK, "create", "tokenreviews", "", True),
        (WEBHOOK, "create", "subjectaccessreviews", "", True),
        (ISSUER, "create", "tokenreviews", "", True),
        ("system:serviceaccount:app2:default", "get", "/metrics", "", False),
        # Application workloads cannot read the CA.
        (
            "system:serviceaccount:app2:default",
            "get",
            "secrets/pkiwarden-ca",
            "pkiwarden-system",
            False,
        ),
    ],
)
def test_least_privilege(
    demo_plane: ControlPlane, user: str, verb: str, resource: str, namespace: str, allowed: bool
) -> None:
    args = [verb, *resource.split()] + (["-n", namespace] if namespace else [])
    assert can_i(demo_plane, user, *args) is allowed


def test_issuer_publishes_trust_and_authority_status_under_its_token(
    demo_plane: ControlPlane,
) -> None:
    deadline = time.monotonic() + 30
    while True:
        found = demo_plane.kubectl(
            "get", "configmap", "pkiwarden-ca.crt", "-n", "app2", "-o", "json", check=False
        )
        phase = demo_plane.kubectl(
            "get", "pkica", "default", "-o", "jsonpath={.status.phase}", check=False
        ).stdout
        if (found.returncode == 0 and phase == "Stable") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found.returncode == 0, found.stderr
    assert "BEGIN CERTIFICATE" in json.loads(found.stdout)["data"]["ca.crt"]
    assert phase == "Stable"


def test_an_authority_whose_ca_secret_the_role_does_not_name_says_what_to_grant(
    demo_plane: ControlPlane,
) -> None:
    """Least privilege: the Role names each CA Secret, so one more authority is one more name."""
    body = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiAuthority",
        "metadata": {"name": "ungranted"},
        "spec": {"secretName": "ungranted-ca"},
    }
    demo_plane.kubectl("apply", "-f", "-", input=json.dumps(body))
    try:

        def told() -> str | None:
            found = demo_plane.kubectl("get", "pkica", "ungranted", "-o", "json").stdout
            conditions = (json.loads(found).get("status") or {}).get("conditions") or []
            ready = next((c for c in conditions if c.get("type") == "Ready"), {})
            message = str(ready.get("message", ""))
            return message if "may not be read" in message else None

        message = eventually(told, 30, "the ungranted authority's status")
        assert message.startswith(
            'CA Secret "pkiwarden-system/ungranted-ca" may not be read by the issuer: Role'
            ' "pkiwarden-issuer" in namespace "pkiwarden-system" grants get, list, watch and'
            ' update on Secrets by name, and "ungranted-ca" is not among its resourceNames.'
        ), message
        assert not can_i(
            demo_plane,
            f"system:serviceaccount:pkiwarden-system:{install.ISSUER_ACCOUNT}",
            "get",
            "secrets/ungranted-ca",
            "-n",
            "pkiwarden-system",
        )
        # A next CA the Role does not name: told once, on the authority, with its own rule.
        named = {"spec": {"nextSecretName": "ungranted-next"}}
        demo_plane.kubectl("patch", "pkica", "default", "--type=merge", "-p", json.dumps(named))

        def warned() -> str | None:
            found = demo_plane.kubectl(
                "get", "events", "-n", "default", "-o", "json",
                "--field-selector=involvedObject.name=default,reason=NextCASecretForbidden",
            ).stdout  # fmt: skip
            items = json.loads(found)["items"]
            return str(items[0]["message"]) if items else None

        warning = eventually(warned, 30, "the Warning on PkiAuthority default")
        assert warning.startswith(
            'spec.nextSecretName: Secret "pkiwarden-system/ungranted-next" may not be read by'
            ' the issuer: Role "pkiwarden-issuer" in namespace "pkiwarden-system" grants get'
        ), warning
        assert "issuer.nextCASecretNames" in warning
    finally:
        unnamed = {"spec": {"nextSecretName": None}}
        demo_plane.kubectl("patch", "pkica", "default", "--type=merge", "-p", json.dumps(unnamed))
        demo_plane.kubectl("delete", "pkica", "ungranted", "--ignore-not-found")


def test_only_the_issuer_can_read_the_ca_secret(demo_plane: ControlPlane) -> None:
    """Every ServiceAccount in the cluster is asked, not only the ones we expect.

    Besides the issuer, only two of Kubernetes' own controllers may: the
    garbage collector and the namespace controller must be able to delete
    anything, on every cluster.
    """
    accounts = service_accounts(demo_plane)
    assert f"pkiwarden-system:{install.ISSUER_ACCOUNT}" in accounts
    readers = [
        account
        for account in accounts
        if can_i(
            demo_plane,
            f"system:serviceaccount:{account}",
            "get",
            "secrets/pkiwarden-ca",
            "-n",
            "pkiwarden-system",
        )
    ]
    assert readers == [
        "kube-system:generic-garbage-collector",
        "kube-system:namespace-controller",
        f"pkiwarden-system:{install.ISSUER_ACCOUNT}",
    ]


def service_accounts(plane: ControlPlane) -> list[str]:
    """Every ServiceAccount of the cluster as ``namespace:name``."""
    return plane.kubectl(
        "get",
        "serviceaccounts",
        "-A",
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}:{.metadata.name}{'\\n'}{end}",
    ).stdout.split()


@pytest.mark.parametrize(
    ("verb", "name", "expected"),
    [
        ("update", "pkiwarden-ca", [f"pkiwarden-system:{install.ISSUER_ACCOUNT}"]),
        ("patch", "pkiwarden-ca", []),
        ("update", "pkiwarden-ca-next", []),
        ("patch", "pkiwarden-ca-next", []),
    ],
)
def test_only_the_issuer_can_change_a_ca_secret(
    demo_plane: ControlPlane, verb: str, name: str, expected: list[str]
) -> None:
    """Every ServiceAccount outside kube-system is asked (Kubernetes' own controllers,
    the garbage collector and the token cleaner among them, may patch any Secret)."""
    writers = [
        account
        for account in service_accounts(demo_plane)
        if not account.startswith("kube-system:")
        and can_i(
            demo_plane,
            f"system:serviceaccount:{account}",
            verb,
            f"secrets/{name}",
            "-n",
            "pkiwarden-system",
        )
    ]
    assert writers == expected


@pytest.mark.parametrize("name", ["pkiwarden-ca", "pkiwarden-ca-next"])
def test_the_webhook_cannot_plant_a_ca(demo_plane: ControlPlane, name: str) -> None:
    """RBAC cannot limit create by name; the shipped admission policy does."""
    planted = demo_plane.kubectl(
        "create", "secret", "generic", name, "-n", "pkiwarden-system",
        "--from-literal=tls.key=planted", f"--as={WEBHOOK}", check=False,
    )  # fmt: skip
    assert planted.returncode != 0
    assert (
        "the pkiwarden webhook may create only its own Secret pkiwarden-webhook-tls,"
        f' not "{name}"' in planted.stderr
    ), planted.stderr
    found = demo_plane.kubectl("get", "secret", name, "-n", "pkiwarden-system", check=False)
    assert name == "pkiwarden-ca" or found.returncode != 0, found.stdout


def test_the_bootstrap_grant_does_not_outlive_the_job(demo_plane: ControlPlane) -> None:
    gone = demo_plane.kubectl("get", "clusterrolebinding", "pkiwarden-bootstrap-ca", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr, gone.stdout
    # The Job made only the PkiAuthority; the issuer made its CA Secret.
    ca = demo_plane.kubectl(
        "get", "secret", "pkiwarden-ca", "-n", "pkiwarden-system", "-o", "name", check=False
    )
    assert ca.stdout.strip() == "secret/pkiwarden-ca", ca.stderr


def test_scrapers_get_the_webhook_ca_certificate_without_its_key(
    demo_plane: ControlPlane,
) -> None:
    published = json.loads(
        demo_plane.kubectl(
            "get", "configmap", "pkiwarden-webhook-ca", "-n", "pkiwarden-system", "-o", "json"
        ).stdout
    )
    registration = json.loads(
        demo_plane.kubectl("get", "validatingwebhookconfiguration/pkiwarden", "-o", "json").stdout
    )
    bundle = base64.b64decode(registration["webhooks"][0]["clientConfig"]["caBundle"]).decode()
    assert published["data"] == {"ca.crt": bundle}
    assert "PRIVATE KEY" not in json.dumps(published)


# --------------------------------------------------------------------------- failures
# Last of the demo's tests: they kill pkiwarden's Pods (each comes back).


def test_a_killed_webhook_pod_fails_applies_closed_until_its_replacement_is_ready(
    demo_plane: ControlPlane, tenant: str
) -> None:
    plane = demo_plane
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
    demo_plane: ControlPlane, tenant: str
) -> None:
    plane = demo_plane
    kube = Kube.from_environment(str(plane.kubeconfig))
    plane.kubectl("apply", "-f", "-", input=json.dumps(web_pki(tenant, "before")))
    before = wait_ready(plane, tenant, "before")
    first_serial = serial(plane, tenant, "before-tls")
    leader = eventually(lambda: lease_holder(plane), TIMEOUT, "an issuer to lead")
    names = {pod["metadata"]["name"] for pod in pods(plane, "pkiwarden-issuer")}
    assert leader in names, (leader, names)

    plane.kubectl("delete", "pod", leader, "-n", SYSTEM, "--wait=false")
    (standby,) = names - {leader}
    # Released at once on SIGTERM. The standby looks every 2 s or so, and the
    # Deployment's replacement Pod, up a second or two after the deletion, takes a
    # free Lease at its first look: either may win, and either is a handover.

    def successor() -> str | None:
        holder = lease_holder(plane)
        return holder if holder not in ("", leader) else None

    def story() -> str:
        lease = plane.kubectl("get", "lease", "pkiwarden-issuer", "-n", SYSTEM, "-o", "yaml")
        logs = plane.kubectl("logs", standby, "-n", SYSTEM, "--tail=40", check=False)
        return "\n".join(
            [pods_story(plane, SYSTEM), "--- the Lease", lease.stdout, f"--- {standby}'s log",
             logs.stdout + logs.stderr]
        )  # fmt: skip

    holder = eventually(successor, 120, "another issuer Pod to take the Lease", explain=story)
    running = {pod["metadata"]["name"] for pod in pods(plane, "pkiwarden-issuer")}
    assert holder in running, (holder, running)  # a live issuer Pod, not a stale identity

    plane.kubectl("apply", "-f", "-", input=json.dumps(web_pki(tenant, "after")))
    after = wait_ready(plane, tenant, "after")
    assert serial(plane, tenant, "before-tls") == first_serial
    assert issued_count(kube, before) == 1
    assert issued_count(kube, after) == 1


@pytest.fixture(scope="module")
def bare_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane with nothing installed, as a real cluster before `apply -k`.

    Dry runs there show what a first install creates.
    """
    directory = tmp_path_factory.mktemp("bare") / "plane"
    try:
        yield controlplane.up(directory, die_with_caller=True)
    finally:
        controlplane.down(directory)


def test_kustomize_base_renders_and_the_server_accepts_it(bare_plane: ControlPlane) -> None:
    rendered = bare_plane.kubectl("kustomize", str(REPO / "deploy"))
    for kind in (
        "CustomResourceDefinition",
        "ClusterRole",
        "Deployment",
        "Service",
        "ValidatingWebhookConfiguration",
        "PodDisruptionBudget",
        "Namespace",
    ):
        assert f"kind: {kind}\n" in rendered.stdout, kind
    assert "pattern:" not in rendered.stdout
    crds = str(REPO / "deploy" / "crds")
    dry = bare_plane.kubectl("apply", "--dry-run=client", "-f", crds)
    assert "customresourcedefinition.apiextensions.k8s.io/pkis.pkiwarden.dev created" in dry.stdout
    # A dry run creates nothing, so what the rest lives in must exist first.
    bare_plane.kubectl("apply", "-f", crds)
    bare_plane.kubectl("apply", "-f", str(REPO / "deploy" / "system"))
    applied = bare_plane.kubectl("apply", "--dry-run=server", "-k", str(REPO / "deploy"))
    assert "deployment.apps/pkiwarden-issuer created (server dry run)" in applied.stdout
    assert "validatingwebhookconfiguration.admissionregistration.k8s.io/pkiwarden created" in (
        applied.stdout
    )
    dev = bare_plane.kubectl("apply", "--dry-run=server", "-k", str(REPO / "deploy/overlays/dev"))
    assert "job.batch/pkiwarden-bootstrap-ca created (server dry run)" in dev.stdout


def rendered(plane: ControlPlane, overlay: str) -> dict[tuple[str, str], dict[str, Any]]:
    """``kubectl kustomize`` of a folder of deploy/, by (kind, name)."""
    text = plane.kubectl("kustomize", str(REPO / "deploy" / overlay)).stdout
    documents = [document for document in yaml.safe_load_all(text) if document]
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def test_the_local_overlay_changes_only_what_one_node_must(bare_plane: ControlPlane) -> None:
    """Image name, pull policy, the webhook's replicas; RBAC, registration, Service as shipped."""
    dev = rendered(bare_plane, "overlays/dev")
    local = rendered(bare_plane, "overlays/local")
    assert local.keys() == dev.keys()
    changed = {key for key in dev if dev[key] != local[key]}
    assert changed == {
        ("Deployment", "pkiwarden-webhook"),
        ("Deployment", "pkiwarden-issuer"),
        ("Job", "pkiwarden-bootstrap-ca"),
    }
    for key in changed:
        shipped, one_node = dev[key], local[key]
        (container,) = one_node["spec"]["template"]["spec"]["containers"]
        image = container.pop("image")
        assert image == "localhost/" + shipped["spec"]["template"]["spec"]["containers"][0]["image"]
        assert container.pop("imagePullPolicy") == "Never"
        shipped["spec"]["template"]["spec"]["containers"][0].pop("image")
        if key == ("Deployment", "pkiwarden-webhook"):
            assert (shipped["spec"]["replicas"], one_node["spec"]["replicas"]) == (2, 1)
            one_node["spec"]["replicas"] = shipped["spec"]["replicas"]
        assert one_node == shipped, key


def test_deployments_run_hardened(bare_plane: ControlPlane) -> None:
    rendered = bare_plane.kubectl("kustomize", str(REPO / "deploy")).stdout
    for needle in (
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "type: RuntimeDefault",
        "- ALL",
        "path: /readyz",
        "path: /healthz",
        "replicas: 2",
    ):
        assert rendered.count(needle) >= 2, needle
