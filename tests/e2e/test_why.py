"""``kubectl pkiwarden why`` on the README's example, run by application teams.

Each team is a ServiceAccount bound to Kubernetes' built-in ``edit`` role in
its own namespace and nothing else of pkiwarden's but what deploy/ ships for
every team (the roles that aggregate into ``edit``, the policy-reader
component). The issuer runs under its own ServiceAccount; no webhook is
registered, so app1's Pki with the typo is admitted, as it is when the
webhook is bypassed, and its team asks ``why`` before any Pod exists.

The control plane is this module's own: the issuer's Lease and the cluster
roles are cluster-wide, and other modules run issuers of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from pkiwarden.local import controlplane, install, issuer_process
from pkiwarden.local import processes as procs
from pkiwarden.local.controlplane import ControlPlane, service_account_kubeconfig
from pkiwarden.why.plugin import with_plugin

T = TypeVar("T")
EXAMPLES = controlplane.REPO_ROOT / "deploy" / "examples"
POLICY_READER = controlplane.REPO_ROOT / "deploy" / "rbac" / "policy-reader"
TIMEOUT = 90.0
APP1_FIX = (
    'Fix: spec.serviceName: "appp1" in Pki app1-pki is not allowed in namespace "app1"'
    ' (allowed by PkiPolicy "app-teams": app1, app2); did you mean "app1"?'
)
APP2_CAUSE = (
    'spec.serviceName: "app2" in Pki app2-pki is not allowed in namespace "app2"'
    ' (allowed by PkiPolicy "app-teams": app1)'
)


def eventually(probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + TIMEOUT
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {TIMEOUT:.0f}s waiting for {what}", pytrace=False)
        time.sleep(0.5)


@dataclass(frozen=True)
class Story:
    plane: ControlPlane
    teams: dict[str, Path]  # namespace -> kubeconfig of its team (edit there, nothing else)

    def why(self, namespace: str, *args: str, kubeconfig: Path | None = None) -> tuple[int, str]:
        """``kubectl pkiwarden why ARGS`` as the team of ``namespace``: (exit status, output)."""
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig or self.teams[namespace]),
            "PATH": f"{self.plane.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        result = subprocess.run(
            ["kubectl", "pkiwarden", "why", *args],
            env=with_plugin(env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return result.returncode, result.stdout + result.stderr

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

        eventually(probe, f"Pki {namespace}/{name} Ready={status} {reason}")


def workload_documents(example: Path) -> str:
    """The example without its Namespace: that is the platform team's, the rest the team's."""
    documents = [d for d in yaml.safe_load_all(example.read_text()) if d]
    return yaml.safe_dump_all([d for d in documents if d["kind"] != "Namespace"])


def clusterrole(plane: ControlPlane, name: str) -> dict[str, Any]:
    role: dict[str, Any] = json.loads(
        plane.kubectl("get", "clusterrole", name, "-o", "json").stdout
    )
    return role


def aggregated_from(plane: ControlPlane, role: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """The ClusterRoles holding the rules ``role`` aggregates, read from the API.

    Aggregation nests (``view`` carries the label that ``edit`` selects), so
    a selected role that is itself aggregated stands for the roles it selects.
    """
    rule = clusterrole(plane, role).get("aggregationRule")
    if rule is None:
        return {role}
    names: set[str] = set()
    for selector in rule.get("clusterRoleSelectors") or []:
        labels = ",".join(f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items())
        listed = plane.kubectl("get", "clusterroles", "-l", labels, "-o", "name").stdout
        for line in listed.split():
            part = line.rpartition("/")[2]
            if part not in seen and part != role:
                names |= aggregated_from(plane, part, seen | {role})
    return names


def grants_pkis(plane: ControlPlane, role: str) -> bool:
    return any(
        "pkiwarden.dev" in rule.get("apiGroups", [])
        for rule in clusterrole(plane, role).get("rules") or []
    )


def member(plane: ControlPlane, namespace: str, name: str = "team", role: str = "edit") -> Path:
    """ServiceAccount ``name`` bound to the built-in ClusterRole ``role`` in ``namespace`` only.

    The built-in ``view``/``edit`` roles are aggregated: kube-controller-manager's
    clusterrole-aggregation controller fills in their rules from every
    ClusterRole carrying their labels (pkiwarden-view and pkiwarden-edit among
    them). Where no controller-manager runs, those rules are empty, so the
    roles the aggregation rule selects (read from the API, not listed here) are
    bound by name instead: the same rules aggregation would combine, no more.
    """
    account = f"--serviceaccount={namespace}:{name}"
    plane.kubectl("create", "serviceaccount", name, "-n", namespace)
    plane.kubectl(
        "create", "rolebinding", f"{name}-{role}", "-n", namespace, f"--clusterrole={role}", account
    )  # fmt: skip
    if procs.read(plane.dir, "kube-controller-manager") is not None:
        eventually(lambda: grants_pkis(plane, role), f"{role} to aggregate pkiwarden's rules")
    else:
        for part in sorted(aggregated_from(plane, role)):
            plane.kubectl(
                "create", "rolebinding", f"{name}-{part.replace(':', '-')}", "-n", namespace,
                f"--clusterrole={part}", account,
            )  # fmt: skip
    return service_account_kubeconfig(plane, namespace, name, plane.dir / f"{namespace}.{name}")


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    directory = tmp_path_factory.mktemp("why") / "plane"
    try:
        plane = controlplane.up(directory, die_with_caller=True)
        identities = install.install(plane, tenants=["app1", "app2"])
        plane.kubectl("apply", "-f", str(POLICY_READER))
        issuer_process.start(plane, kubeconfig=identities.issuer)
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
    assert document["fix"] == pki["message"] == APP1_FIX.removeprefix("Fix: ")
    assert document["unchecked"][0]["what"].startswith("the PkiPolicies")
    assert document["unchecked"][0]["needs"].startswith("list pkipolicies.pkiwarden.dev")


def test_app2_not_allowed_after_the_policy_change_and_ready_once_fixed(story: Story) -> None:
    plane = story.plane
    story.as_team(
        "app2", "apply", "-n", "app2", "-f", "-", input=workload_documents(EXAMPLES / "app2.yaml")
    )
    template = json.loads(
        story.as_team("app2", "get", "deployment", "app2", "-n", "app2", "-o", "json")
    )
    pod = {  # no kubelet or scheduler here: the Pod the Deployment would run, created by the team
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app2-0", **template["spec"]["template"]["metadata"]},
        "spec": template["spec"]["template"]["spec"],
    }
    story.as_team("app2", "apply", "-n", "app2", "-f", "-", input=json.dumps(pod))
    story.wait_ready("app2", "app2-pki", "True")

    status, output = story.why("app2", "pod/app2-0", "-n", "app2")
    assert status == 0, output
    assert output.splitlines()[0] == (
        "READY: pod/app2-0 in namespace app2: every certificate it needs is Ready (Pki app2-pki)"
    )
    assert "  Secret app2-pki-tls (volume tls): exists; written by Pki app2-pki" in output

    plane.kubectl(
        "patch", "pkipolicy", "app-teams", "--type=json",
        "-p", '[{"op":"replace","path":"/spec/allowedServiceNames","value":["app1"]}]',
    )  # fmt: skip
    story.as_team("app2", "delete", "secret", "app2-pki-tls", "-n", "app2")
    story.wait_ready("app2", "app2-pki", "False", "NotAllowed")

    # Status is written before the Events: wait for the one on the Pod too.
    def pod_told() -> str:
        selector = "involvedObject.name=app2-0,reason=NotAllowed"
        listed = plane.kubectl(
            "get", "events", "-n", "app2", "-o", "name", "--field-selector", selector
        )
        return listed.stdout.strip()

    eventually(pod_told, "the NotAllowed Event on pod app2-0")

    status, output = story.why("app2", "pod/app2-0", "-n", "app2")
    assert status == 1, output
    assert output.splitlines()[0] == (
        "NOT READY: pod/app2-0 in namespace app2: Pki app2-pki is not Ready (NotAllowed)"
    )
    assert f"Fix: {APP2_CAUSE}" in output
    assert "    no selecting PkiPolicy allows service name 'app2'" in output
    assert "Warning NotAllowed on pod/app2-0" in output  # the issuer's Event on the Pod

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
    status, output = story.why("app2", "pod/app2-0", "-n", "app2")
    assert status == 0, output
    status, output = story.why("app2", "secret/app2-pki-tls", "-n", "app2", "-o", "json")
    assert status == 0, output
    assert json.loads(output)["consumers"] == ["pod/app2-0"]


def test_what_a_team_cannot_read_is_named_with_the_permission(story: Story) -> None:
    status, output = story.why("app2", "pod/missing", "-n", "app2")
    assert (status, output) == (2, "CANNOT TELL: pod/missing not found in namespace app2\n")
    status, output = story.why("app2", "pki/missing", "-n", "app2", "-o", "json")
    assert status == 2, output
    assert json.loads(output)["error"].startswith(
        "pki/missing not found in namespace app2; if kubectl apply refused it, the refusal names"
    )
    # app1's team has no rights in app2.
    status, output = story.why("app1", "pod/app2-0", "-n", "app2")
    assert status == 2, output
    assert output == (
        "CANNOT TELL: pod/app2-0 in namespace app2 cannot be read: forbidden;"
        " it needs get pods in namespace app2\n"
    )
    # A token the API server does not accept.
    config = yaml.safe_load(story.teams["app2"].read_text())
    config["users"][0]["user"]["token"] = "not-a-token"
    stale = story.plane.dir / "app2.stale"
    stale.write_text(yaml.safe_dump(config))
    status, output = story.why("app2", "pod/app2-0", "-n", "app2", kubeconfig=stale)
    assert status == 2, output
    assert output.startswith("CANNOT TELL: the API server did not accept these credentials (401")
    # A viewer sees the chain but no Secret, and is told so.
    viewer = member(story.plane, "app2", name="viewer", role="view")
    status, output = story.why("app2", "pod/app2-0", "-n", "app2", kubeconfig=viewer)
    assert status == 0, output
    assert "  Secret app2-pki-tls (volume tls): not readable; written by Pki app2-pki" in output
    assert "  Secret app2-pki-tls: needs get secrets in namespace app2" in output
