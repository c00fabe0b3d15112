"""``kubectl pkiwarden why`` on the README's example, run by application teams.

Each team is a ServiceAccount bound to Kubernetes' built-in ``edit`` role in
its own namespace and nothing else: what pkiwarden adds to ``edit`` comes
through kube-controller-manager's clusterrole-aggregation controller from the
roles deploy/ ships, and PkiPolicies are readable through deploy/'s
policy-reader component. deploy/overlays/dev is installed as shipped and the
issuer runs with its Deployment's arguments under its own ServiceAccount; the
webhook's registration is then removed, so app1's Pki with the typo is
admitted, as it is when the webhook is bypassed, and its team asks ``why``
before any Pod exists. app2's Pod is the one its Deployment's ReplicaSet creates.

The control plane is this module's own: the issuer's Lease and the cluster
roles are cluster-wide, and other modules run issuers of their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from pkiwarden.local import controlplane, install, issuer_process
from pkiwarden.local.controlplane import ControlPlane, service_account_kubeconfig
from pkiwarden.local.demo import deployment_pod
from shared.certificates import serial_hex
from tests.e2e.helpers import eventually, why

EXAMPLES = controlplane.REPO_ROOT / "deploy" / "examples"
POLICY_READER = controlplane.REPO_ROOT / "deploy" / "rbac" / "policy-reader"
TIMEOUT = 90.0
APP1_FIX = (
    'Fix: spec.serviceName: "appp1" in Pki app1-pki is not allowed in namespace "app1"'
    ' (allowed by PkiPolicy "app-teams": app1, app2); did you mean "app1"?'
)
# app2 had a certificate before the policy changed: not a typo, a policy change.
APP2_CAUSE = (
    'spec.serviceName: "app2" in Pki app2-pki is not allowed in namespace "app2"'
    ' (PkiPolicy "app-teams" now allows: app1)'
)
# What the issuer's status says of app1 (its run-time wording, which never guesses).
APP1_STATUS = (
    'spec.serviceName: "appp1" in Pki app1-pki is not allowed in namespace "app1"'
    ' (PkiPolicy "app-teams" now allows: app1, app2); ask the platform team to allow it,'
    " or change spec.serviceName"
)


@dataclass(frozen=True)
class Story:
    plane: ControlPlane
    teams: dict[str, Path]  # namespace -> kubeconfig of its team (edit there, nothing else)

    def why(self, namespace: str, *args: str, kubeconfig: Path | None = None) -> tuple[int, str]:
        """``kubectl pkiwarden why ARGS`` as the team of ``namespace``: (exit status, output)."""
        return why(self.plane, kubeconfig or self.teams[namespace], *args)

    def as_team(self, namespace: str, *args: str, input: str | None = None) -> str:
        return self.plane.kubectl(*args, input=input, kubeconfig=self.teams[namespace]).stdout

    def pki_ready(self, namespace: str, name: str) -> tuple[str, str]:
        """(status, reason) of the Pki's Ready condition, ("", "") before the issuer reports."""
        pki = json.loads(
            self.plane.kubectl("get", "pki", name, "-n", namespace, "-o", "json").stdout
        )
        for condition in (pki.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready":
                return str(condition.get("status")), str(condition.get("reason"))
        return "", ""

    def wait_ready(self, namespace: str, name: str, status: str, reason: str = "") -> None:
        def probe() -> bool:
            now = self.pki_ready(namespace, name)
            return now[0] == status and (not reason or now[1] == reason)

        eventually(probe, TIMEOUT, f"Pki {namespace}/{name} Ready={status} {reason}", every=0.5)


def trust_bundle_ca(plane: ControlPlane, namespace: str) -> x509.Certificate | None:
    """The one CA of the namespace's pkiwarden-ca.crt, once the issuer has published it."""
    found = plane.kubectl(
        "get", "configmap", "pkiwarden-ca.crt", "-n", namespace, "-o", "json", check=False
    )
    if found.returncode != 0:
        return None
    (ca,) = x509.load_pem_x509_certificates(json.loads(found.stdout)["data"]["ca.crt"].encode())
    return ca


def workload_documents(example: Path) -> str:
    """The example without its Namespace: that is the platform team's, the rest the team's."""
    documents = [d for d in yaml.safe_load_all(example.read_text()) if d]
    return yaml.safe_dump_all([d for d in documents if d["kind"] != "Namespace"])


def clusterroles(plane: ControlPlane, *which: str) -> list[dict[str, Any]]:
    """ClusterRoles by name, or by ``-l SELECTOR``, as the API returns them."""
    listed = json.loads(plane.kubectl("get", "clusterroles", *which, "-o", "json").stdout)
    items: list[dict[str, Any]] = listed.get("items", [listed])
    return items


def aggregated(plane: ControlPlane, role: str) -> bool:
    """True once the built-in ``role`` holds the rules of every pkiwarden role labelled for it."""
    label = f"rbac.authorization.k8s.io/aggregate-to-{role}=true"
    ours = [
        r
        for r in clusterroles(plane, "-l", label)
        if r["metadata"]["name"].startswith("pkiwarden-")
    ]
    assert ours, f"deploy/ ships no role that aggregates into {role}"
    (built_in,) = clusterroles(plane, role)
    held = built_in.get("rules") or []
    return all(rule in held for r in ours for rule in r.get("rules") or [])


def member(plane: ControlPlane, namespace: str, name: str = "team", role: str = "edit") -> Path:
    """ServiceAccount ``name`` bound to the built-in ClusterRole ``role`` in ``namespace`` only.

    The built-in ``view``/``edit`` roles are aggregated: kube-controller-manager's
    clusterrole-aggregation controller fills in their rules from every
    ClusterRole carrying their labels, pkiwarden-view and pkiwarden-edit among
    them; nothing of pkiwarden's is bound by name.
    """
    account = f"--serviceaccount={namespace}:{name}"
    plane.kubectl("create", "serviceaccount", name, "-n", namespace)
    plane.kubectl(
        "create", "rolebinding", f"{name}-{role}", "-n", namespace, f"--clusterrole={role}", account
    )  # fmt: skip
    eventually(
        lambda: aggregated(plane, role),
        TIMEOUT,
        f"{role} to aggregate pkiwarden's rules",
        every=0.5,
    )
    return service_account_kubeconfig(plane, namespace, name, plane.dir / f"{namespace}.{name}")


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    directory = tmp_path_factory.mktemp("why") / "plane"
    try:
        plane = controlplane.up(directory, die_with_caller=True)
        install.install(plane, tenants=["app1", "app2"])
        plane.kubectl("delete", "validatingwebhookconfiguration", "pkiwarden")
        issuer_process.start_deployed(plane, install.identities(plane))
        plane.kubectl("apply", "-f", str(EXAMPLES / "policy.yaml"))
        yield Story(plane, {ns: member(plane, ns) for ns in ("app1", "app2")})
    finally:
        controlplane.down(directory)


@pytest.fixture(scope="module")
def app1(story: Story) -> Story:
    """Team app1 applies its Pki (with the typo); the issuer refuses it."""
    story.as_team(
        "app1", "apply", "-n", "app1", "-f", "-", input=workload_documents(EXAMPLES / "app1.yaml")
    )
    story.wait_ready("app1", "app1-pki", "False", "NotAllowed")
    return story


def test_app1_gets_the_typo_fix_before_any_pod_exists(app1: Story) -> None:
    status, output = app1.why("app1", "pki/app1-pki", "-n", "app1")
    assert status == 1, output
    lines = output.splitlines()
    assert (
        lines[0]
        == "NOT READY: pki/app1-pki in namespace app1: Pki app1-pki is not Ready (NotAllowed)"
    )
    assert APP1_FIX in lines
    assert "    PkiPolicy app-teams: service names app1, app2" in lines
    # Which CA signs it, read with the policy-reader component like the policies.
    assert "    PkiAuthority default (signs it): Ready, phase Stable" in lines
    assert any(line.startswith("Trust bundle: ") for line in lines)
    assert "Not checked:" not in output, output


def test_without_the_policy_reader_why_says_what_it_relied_on(app1: Story) -> None:
    plane = app1.plane
    plane.kubectl("delete", "clusterrolebinding", "pkiwarden-policy-reader")
    try:
        status, output = app1.why("app1", "pki/app1-pki", "-n", "app1", "-o", "json")
    finally:
        plane.kubectl("apply", "-f", str(POLICY_READER))
    assert status == 1, output
    document = json.loads(output)
    pki = document["pkis"][0]
    assert pki["policy"] == {"readable": False, "deciding": None, "selecting": []}
    assert pki["findings"] is None
    # The issuer's words from the status stand in for the policy: still the fix.
    assert document["fix"] == pki["message"] == APP1_STATUS
    assert document["unchecked"][0]["what"].startswith("the PkiPolicies")
    assert document["unchecked"][0]["needs"].startswith("list pkipolicies.pkiwarden.dev")


def test_a_secret_name_taken_by_a_foreign_secret_is_read_as_metadata_only(app1: Story) -> None:
    """The Secret a Pki names but cannot write is someone else's: no certificate of it is
    checked, nothing says the Pki writes it, and the verdict names the conflict alone."""
    legacy = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "legacy", "namespace": "app1"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "", "tls.key": ""},
    }
    extra = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": "extra", "namespace": "app1"},
        "spec": {"serviceName": "app1", "secretName": "legacy"},
    }
    app1.as_team("app1", "apply", "-f", "-", input=json.dumps(legacy))
    app1.as_team("app1", "apply", "-f", "-", input=json.dumps(extra))
    try:
        app1.wait_ready("app1", "extra", "False", "SecretConflict")
        status, output = app1.why("app1", "pki/extra", "-n", "app1", "-o", "json")
        assert status == 1, output
        document = json.loads(output)
        assert document["verdict"] == (
            "NOT READY: pki/extra in namespace app1: Pki extra is not Ready (SecretConflict)"
        )
        (secret,) = document["secrets"]
        assert (secret["exists"], secret["managedByPkiwarden"]) == (True, False)
        assert (secret["writtenBy"], secret["claimedBy"]) == (None, "extra")
        assert secret["certificate"] is None
        status, text = app1.why("app1", "pki/extra", "-n", "app1")
        assert "does NOT chain" not in text and "tls.crt is empty" not in text, text
        assert "written by Pki" not in text, text
    finally:
        app1.as_team("app1", "delete", "pki", "extra", "-n", "app1", "--wait=false")
        app1.as_team("app1", "delete", "secret", "legacy", "-n", "app1")


@pytest.fixture(scope="module")
def app2(story: Story) -> str:
    """Team app2 applies its Pki and Deployment; the name of the Pod its ReplicaSet creates."""
    story.as_team(
        "app2", "apply", "-n", "app2", "-f", "-", input=workload_documents(EXAMPLES / "app2.yaml")
    )
    return eventually(
        lambda: deployment_pod(story.plane, "app2", "app2"),
        TIMEOUT,
        "the ReplicaSet to create app2's Pod",
        every=0.5,
    )


def test_app2_not_allowed_after_the_policy_change_and_ready_once_fixed(
    story: Story, app2: str
) -> None:
    plane, pod = story.plane, app2
    story.wait_ready("app2", "app2-pki", "True")

    status, output = story.why("app2", f"pod/{pod}", "-n", "app2")
    assert status == 0, output
    assert output.splitlines()[0] == (
        f"READY: pod/{pod} in namespace app2: every certificate it needs is Ready (Pki app2-pki)"
    )
    assert "  Secret app2-pki-tls (volume tls): exists; written by Pki app2-pki" in output
    ca = eventually(lambda: trust_bundle_ca(plane, "app2"), TIMEOUT, "the trust bundle in app2")
    chain = (
        f"    certificate chains to trust bundle CA {ca.subject.rfc4514_string()}"
        f" (serial {serial_hex(ca.serial_number)})"
    )
    lines = output.splitlines()
    assert (
        lines[
            lines.index("  Secret app2-pki-tls (volume tls): exists; written by Pki app2-pki") + 1
        ]
        == chain
    )
    assert "tls.key" not in output and "PRIVATE KEY" not in output

    plane.kubectl(
        "patch", "pkipolicy", "app-teams", "--type=json",
        "-p", '[{"op":"replace","path":"/spec/allowedServiceNames","value":["app1"]}]',
    )  # fmt: skip
    story.as_team("app2", "delete", "secret", "app2-pki-tls", "-n", "app2")
    story.wait_ready("app2", "app2-pki", "False", "NotAllowed")

    # Status is written before the Events: wait for the one on the Pod too.
    def pod_told() -> str:
        selector = f"involvedObject.name={pod},reason=NotAllowed"
        listed = plane.kubectl(
            "get", "events", "-n", "app2", "-o", "name", "--field-selector", selector
        )
        return listed.stdout.strip()

    eventually(pod_told, TIMEOUT, f"the NotAllowed Event on pod {pod}", every=0.5)

    status, output = story.why("app2", f"pod/{pod}", "-n", "app2")
    assert status == 1, output
    assert output.splitlines()[0] == (
        f"NOT READY: pod/{pod} in namespace app2: Pki app2-pki is not Ready (NotAllowed)"
    )
    assert f"Fix: {APP2_CAUSE}" in output
    assert "    no selecting PkiPolicy allows service name 'app2'" in output
    assert f"Warning NotAllowed on pod/{pod}" in output  # the issuer's Event on the Pod

    status, output = story.why("app2", "deployment/app2", "-n", "app2", "-o", "json")
    assert status == 1, output
    document = json.loads(output)
    assert document["target"] == {"kind": "deployment", "name": "app2", "namespace": "app2"}
    assert document["pkis"][0]["reason"] == "NotAllowed"
    assert document["pkis"][0]["failedIssuanceAttempts"] >= 1
    assert document["pkis"][0]["nextRetryTime"]
    assert document["fix"].startswith(APP2_CAUSE)

    plane.kubectl("apply", "-f", str(EXAMPLES / "policy.yaml"))
    story.wait_ready("app2", "app2-pki", "True")
    status, output = story.why("app2", f"pod/{pod}", "-n", "app2")
    assert status == 0, output
    status, output = story.why("app2", "secret/app2-pki-tls", "-n", "app2", "-o", "json")
    assert status == 0, output
    document = json.loads(output)
    assert document["consumers"] == [f"pod/{pod}"]
    certificate = document["secrets"][0]["certificate"]
    assert (certificate["chainsToTrustBundle"], certificate["validNow"]) == (True, True), output
    assert certificate["authority"]["serialNumber"] == serial_hex(ca.serial_number)
    pki = json.loads(plane.kubectl("get", "pki", "app2-pki", "-n", "app2", "-o", "json").stdout)
    assert certificate["serialNumber"] == pki["status"]["serialNumber"]


def test_what_a_team_cannot_read_is_named_with_the_permission(story: Story, app2: str) -> None:
    pod = app2
    status, output = story.why("app2", "pod/missing", "-n", "app2")
    assert (status, output) == (2, "CANNOT TELL: pod/missing not found in namespace app2\n")
    status, output = story.why("app2", "pki/missing", "-n", "app2", "-o", "json")
    assert status == 2, output
    assert json.loads(output)["error"].startswith(
        "pki/missing not found in namespace app2; if kubectl apply refused it, the refusal names"
    )
    # app1's team has no rights in app2.
    status, output = story.why("app1", f"pod/{pod}", "-n", "app2")
    assert status == 2, output
    assert output == (
        f"CANNOT TELL: pod/{pod} in namespace app2 cannot be read: forbidden;"
        " it needs get pods in namespace app2\n"
    )
    # A token the API server does not accept.
    config = yaml.safe_load(story.teams["app2"].read_text())
    config["users"][0]["user"]["token"] = "not-a-token"
    stale = story.plane.dir / "app2.stale"
    stale.write_text(yaml.safe_dump(config))
    status, output = story.why("app2", f"pod/{pod}", "-n", "app2", kubeconfig=stale)
    assert status == 2, output
    assert output.startswith("CANNOT TELL: the API server did not accept these credentials (401")
    # A viewer sees the chain but no Secret, and is told so.
    viewer = member(story.plane, "app2", name="viewer", role="view")
    status, output = story.why("app2", f"pod/{pod}", "-n", "app2", kubeconfig=viewer)
    assert status == 0, output
    assert "  Secret app2-pki-tls (volume tls): not readable; written by Pki app2-pki" in output
    assert "  Secret app2-pki-tls: needs get secrets in namespace app2" in output
    assert (
        "  whether the certificate in Secret app2-pki-tls chains to the trust bundle:"
        " needs get secrets in namespace app2"
    ) in output
    assert "certificate chains to trust bundle" not in output
