"""The README's apply-time messages are what kubectl prints against a real API server.

Every manifest below is applied (server-side dry run) through the real
kube-apiserver and the running webhook; every example in the README's "At
apply time" table must appear, character for character, in what kubectl
printed, and so must the console example above it.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

import yaml

from pkiwarden.local.controlplane import REPO_ROOT, ControlPlane
from pkiwarden.local.webhook_process import LocalWebhook

README = REPO_ROOT / "README.md"
EXAMPLES = REPO_ROOT / "deploy" / "examples"


def pki(name: str, namespace: str = "app1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"serviceName": "app1" if namespace == "app1" else namespace, **spec},
    }


def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


APP_TEAMS: dict[str, Any] = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())

# Each is applied alone (a dry run), so each denial carries only its own findings.
MANIFESTS: list[dict[str, Any]] = [
    pki("typo", serviceName="appp1"),
    pki("alone", "lonely", serviceName="app1"),
    pki("syntax", serviceName="App1", dnsNames=["app1.app1.svc", "*.*.example.com", "a..b"]),
    pki("empty", dnsNames=[]),
    pki("twice", dnsNames=["app1.app1.svc", "app1.app1.svc"]),
    pki("many", dnsNames=[f"n{i}.example.com" for i in range(100)]),
    pki("short", duration="30m", renewBefore="1h"),
    pki("often", duration="1h", renewBefore="59m59s"),
    pki("hinted", duration="8760h", renewBefore="8760h"),
    pki("dot", dnsNames=["app1.app1.svc.cluster.local."]),
    pki("cidr", ipAddresses=["10.20.0.0/24"]),
    pki("all-at-once", serviceName="appp1", duration="8760h"),
    pki("new", "team-new", serviceName="web"),  # a namespace nobody onboarded
    pki("long", duration="8760h"),
    pki("longest", duration="100000h"),
    pki("algorithm", privateKey={"algorithm": "ecdsa", "rotationPolicy": "always"}),
    pki("rsa", privateKey={"algorithm": "RSA", "size": 1024}, usages=["server-auth"]),
    pki("scope", commonName="app1.example.com"),
    pki("field", serviceNmae="app1"),
    pki("soft", renewBefore="1h"),
    pki("cn", dnsNames=["app1.app1.svc"], commonName="app1.app1.svc.cluster.local"),
    pki("authority", authority="defualt"),  # the webhook fixture makes "default"
    policy(
        "bad-cidr", namespaces=["app1"], allowedServiceNames=["x"], allowedIPRanges=["10.0.0.0/33"]
    ),
    policy("bad-duration", namespaces=["app1"], allowedServiceNames=["x"], maxDuration="10 days"),
    policy("short-max", namespaces=["app1"], allowedServiceNames=["x"], maxDuration="720h"),
    policy("typo", namespaces=["paymnets"], allowedServiceNames=["x"]),
    policy(
        "everyone", namespaceSelector={}, allowedServiceNames=["x"], allowedIPRanges=["0.0.0.0/0"]
    ),
    policy(
        "authorities",
        namespaces=["app1"],
        allowedServiceNames=["x"],
        allowedAuthorities=["defualt"],
    ),
]


def one_line(text: str) -> str:
    return " ".join(text.split())


def readme_examples() -> list[str]:
    """The backticked examples of the "At apply time" table, in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("**At apply time**") : text.index("**At run time**")]
    examples: list[str] = []
    for row in section.splitlines():
        cells = row.split(" | ")
        if row.startswith("| ") and len(cells) == 2 and not row.startswith("| finding"):
            examples += re.findall(r"`([^`]+)`", cells[1])
    return examples


def readme_console() -> tuple[str, str]:
    """The command and the stderr line of the console example in that section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("**At apply time**") : text.index("**At run time**")]
    block = section.split("```console\n", 1)[1].split("```", 1)[0].splitlines()
    command = block[0].removeprefix("$ ")
    (error,) = [line for line in block if line.startswith("Error from server")]
    return command, error


def dry_run(plane: ControlPlane, document: dict[str, Any]) -> str:
    result = plane.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(document), check=False
    )
    return one_line(result.stderr)


def policy_change_warning(plane: ControlPlane) -> str:
    """A dry-run tightening of app-teams while app2's Pki exists: the webhook learns of
    the Pki through its watch, so the warning is polled for."""
    existing = pki("app2-pki", "app2")
    tightened = {**APP_TEAMS, "spec": {**APP_TEAMS["spec"], "allowedServiceNames": ["app1"]}}
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(existing))
    try:
        deadline = time.monotonic() + 20
        while True:
            printed = dry_run(plane, tightened)
            if "no longer allows" in printed or time.monotonic() > deadline:
                return printed
            time.sleep(0.5)
    finally:
        plane.kubectl("delete", "pki", "-n", "app2", "app2-pki", "--ignore-not-found")


def authority_not_allowed(plane: ControlPlane) -> str:
    """A dry run of a Pki naming an authority that exists but app-teams does not allow; the
    webhook learns of the new PkiAuthority through its watch, so the denial is polled for."""
    authority = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiAuthority",
        "metadata": {"name": "platform"},
        "spec": {"secretName": "platform-ca", "generate": {}},
    }
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(authority))
    try:
        deadline = time.monotonic() + 20
        while True:
            printed = dry_run(plane, pki("platform", authority="platform"))
            if "is not allowed by" in printed or time.monotonic() > deadline:
                return printed
            time.sleep(0.5)
    finally:
        plane.kubectl("delete", "pkiauthority", "platform", "--ignore-not-found")


def test_the_readme_table_is_what_kubectl_prints(
    control_plane: ControlPlane, webhook: LocalWebhook
) -> None:
    # A namespace the "typo" policy's message suggests, and one a policy selects that is
    # never onboarded.
    for namespace in ("payments", "team-new"):
        control_plane.kubectl("create", "namespace", namespace, check=False)
    new_team = policy("team-new", namespaces=["team-new"], allowedServiceNames=["web"])
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(new_team))
    try:
        printed = [dry_run(control_plane, document) for document in MANIFESTS]
    finally:
        control_plane.kubectl("delete", "pkipolicy", "team-new", "--ignore-not-found")
    printed.append(policy_change_warning(control_plane))
    printed.append(authority_not_allowed(control_plane))
    examples = readme_examples()
    assert len(examples) >= 20
    missing = [example for example in examples if not any(example in p for p in printed)]
    assert missing == [], "\n".join(["not printed by kubectl:", *missing, "printed:", *printed])


def test_the_readme_console_example_is_what_kubectl_prints(
    control_plane: ControlPlane, webhook: LocalWebhook
) -> None:
    command, expected = readme_console()
    args = command.split()
    assert args[:2] == ["kubectl", "apply"]
    kubectl = [str(control_plane.binaries.kubectl), "--kubeconfig", str(control_plane.kubeconfig)]
    # From the repository root, as the README's relative path is written.
    result = subprocess.run(
        [*kubectl, *args[1:]], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error from server")]
    assert errors == [expected]


def test_kubectl_explain_lists_the_allowed_values(
    control_plane: ControlPlane, crds: set[str]
) -> None:
    """The CRD has no enums (they would pre-empt pkiwarden's messages): the allowed
    values and the defaults are in the descriptions that kubectl explain shows."""
    usages = one_line(control_plane.kubectl("explain", "pki.spec.usages").stdout)
    assert "Allowed: server auth, client auth, digital signature, key encipherment," in usages
    assert "Default for ECDSA and Ed25519 keys: server auth, digital signature;" in usages
    algorithm = one_line(control_plane.kubectl("explain", "pki.spec.privateKey.algorithm").stdout)
    assert "Allowed: ECDSA, RSA, Ed25519. Default: ECDSA." in algorithm
