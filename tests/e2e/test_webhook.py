"""The webhook against a real kube-apiserver: what a user sees from ``kubectl apply``."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import yaml

from pkiwarden.local import controlplane
from pkiwarden.local.controlplane import REPO_ROOT, ControlPlane
from pkiwarden.local.webhook_process import LocalWebhook
from tests.e2e.helpers import TIMEOUT, TYPO_DENIAL, delete_namespace, eventually, one_line

EXAMPLES = REPO_ROOT / "deploy" / "examples"


def pki(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def apply(plane: ControlPlane, *documents: dict[str, Any], dry_run: bool = False) -> Any:
    flags = ["--dry-run=server"] if dry_run else []
    text = yaml.safe_dump_all(documents)
    return plane.kubectl("apply", *flags, "-f", "-", input=text, check=False)


def test_typo_is_denied_with_the_suggestion(
    control_plane: ControlPlane, webhook: LocalWebhook
) -> None:
    for flags in ([], ["--dry-run=server"]):
        result = control_plane.kubectl(
            "apply", *flags, "-f", str(EXAMPLES / "app1.yaml"), check=False
        )
        assert result.returncode != 0
        assert "Error from server (Forbidden)" in result.stderr
        assert TYPO_DENIAL in one_line(result.stderr), result.stderr
    missing = control_plane.kubectl("get", "pki", "-n", "app1", "app1-pki", check=False)
    assert missing.returncode != 0


def test_three_errors_come_in_one_message(
    control_plane: ControlPlane, webhook: LocalWebhook
) -> None:
    bad = pki("three", "app1", serviceName="appp1", dnsNames=["Bad_Name"], duration="10m")
    result = apply(control_plane, bad)
    assert result.returncode != 0
    message = one_line(result.stderr)
    assert message.count("denied the request:") == 1
    assert 'did you mean "app1"?; spec.dnsNames[0]: "Bad_Name" has an illegal character' in message
    assert '; spec.duration: "10m" is shorter than the minimum, 1h' in message


def test_a_usage_and_an_rsa_size_the_policy_does_not_grant_are_denied(
    control_plane: ControlPlane, webhook: LocalWebhook
) -> None:
    """The example policy says nothing: TLS usages only, RSA of 2048 bits or more."""
    signing = pki("signing", "app1", serviceName="app1", usages=["server auth", "code signing"])
    result = apply(control_plane, signing, dry_run=True)
    assert result.returncode != 0
    assert (
        'spec.usages[1]: "code signing" is not allowed by PkiPolicy "app-teams" (allowed:'
        ' "server auth", "client auth", "digital signature", "key encipherment",'
        ' "key agreement"); remove it from spec.usages'
    ) in one_line(result.stderr), result.stderr
    tls = pki("tls", "app1", serviceName="app1", usages=["server auth", "client auth"])
    assert apply(control_plane, tls, dry_run=True).returncode == 0


def test_soft_finding_is_created_and_kubectl_prints_the_warning(
    control_plane: ControlPlane, webhook: LocalWebhook
) -> None:
    soft = pki("soft", "app1", serviceName="app1", renewBefore="1h")
    try:
        result = apply(control_plane, soft)
        assert result.returncode == 0, result.stderr
        assert 'Warning: spec.renewBefore: "1h" is under 10% of the duration' in result.stderr
        control_plane.kubectl("get", "pki", "-n", "app1", "soft")
    finally:
        control_plane.kubectl("delete", "pki", "-n", "app1", "soft", "--ignore-not-found")


def test_policy_with_a_bad_cidr_is_denied(
    control_plane: ControlPlane, webhook: LocalWebhook
) -> None:
    policy = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": "bad-cidr"},
        "spec": {
            "namespaces": ["app1"],
            "allowedServiceNames": ["x"],
            "allowedIPRanges": ["10.0.0.0/33"],
        },
    }
    result = apply(control_plane, policy)
    assert result.returncode != 0
    assert (
        'admission webhook "pkipolicies.pkiwarden.dev" denied the request:'
        ' spec.allowedIPRanges[0]: "10.0.0.0/33" is not a CIDR'
    ) in one_line(result.stderr)


def test_authority_with_a_bad_duration_is_denied(
    control_plane: ControlPlane, webhook: LocalWebhook
) -> None:
    authority = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiAuthority",
        "metadata": {"name": "bad-pacing"},
        "spec": {"secretName": "pkiwarden-ca", "rotation": {"trustPropagation": "soon"}},
    }
    result = apply(control_plane, authority)
    assert result.returncode != 0
    assert (
        'admission webhook "pkiauthorities.pkiwarden.dev" denied the request:'
        ' spec.rotation.trustPropagation: "soon" is not a duration'
    ) in one_line(result.stderr)


def test_namespace_without_policy_is_denied_saying_so(
    control_plane: ControlPlane, webhook: LocalWebhook
) -> None:
    result = apply(control_plane, pki("alone", "lonely", serviceName="app1"))
    assert result.returncode != 0
    assert 'metadata.namespace: "lonely" is not selected by any PkiPolicy' in one_line(
        result.stderr
    )


def test_second_pki_with_the_same_secret_is_denied_naming_the_first(
    control_plane: ControlPlane, webhook: LocalWebhook
) -> None:
    first = pki("first", "app2", serviceName="app2", secretName="shared-tls")
    second = pki("second", "app2", serviceName="app2", secretName="shared-tls")
    try:
        assert apply(control_plane, first).returncode == 0
        # The webhook learns of "first" through its watch: give it a moment.
        deadline = time.monotonic() + 10
        while apply(control_plane, second, dry_run=True).returncode == 0:
            assert time.monotonic() < deadline, "the webhook never saw the first Pki"
            time.sleep(0.1)
        result = apply(control_plane, second)
        assert result.returncode != 0
        assert (
            'spec.secretName: "shared-tls" is already the Secret of Pki "first" in this namespace'
        ) in one_line(result.stderr)
    finally:
        control_plane.kubectl(
            "delete", "pki", "-n", "app2", "first", "second", "--ignore-not-found"
        )


def authority(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiAuthority",
        "metadata": {"name": name},
        "spec": {"secretName": f"{name}-ca", "generate": {}},
    }


def test_a_pki_is_told_which_authorities_its_namespace_may_use(
    control_plane: ControlPlane, webhook: LocalWebhook
) -> None:
    """Denied at apply time: an authority that does not exist, with those the namespace may
    use and did you mean; one that exists but the policy does not allow, naming the policy."""
    namespace = "authorities"
    control_plane.kubectl("create", "namespace", namespace, check=False)
    policy = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": namespace},
        "spec": {
            "namespaces": [namespace],
            "allowedServiceNames": ["web"],
            "allowedAuthorities": ["default", "platform"],
        },
    }

    def told(name: str) -> str:
        result = apply(control_plane, pki("web", namespace, serviceName="web", authority=name))
        return one_line(result.stderr) if result.returncode else "admitted"

    try:
        created = apply(control_plane, authority("platform"), authority("internal"), policy)
        assert created.returncode == 0, created.stderr
        # The webhook learns of new objects through its watches, a moment later.
        eventually(lambda: "not allowed" in told("internal"), TIMEOUT, "the webhook to know them")
        assert (
            'admission webhook "pkis.pkiwarden.dev" denied the request: spec.authority: '
            '"internal" is not allowed by PkiPolicy "authorities" (allowed: default, platform)'
        ) in told("internal")
        assert (
            'denied the request: spec.authority: "platfrom" is not a PkiAuthority (this '
            'namespace may use: default, platform); did you mean "platform"?'
        ) in told("platfrom")
        assert told("platform") == "admitted"
    finally:
        control_plane.kubectl("delete", "pkipolicy", namespace, "--ignore-not-found")
        for name in ("platform", "internal"):
            control_plane.kubectl("delete", "pkiauthority", name, "--ignore-not-found")
        delete_namespace(control_plane, namespace)


def test_ca_status_lists_every_authority_and_rotate_names_the_ones_there_are(
    control_plane: ControlPlane, webhook: LocalWebhook
) -> None:
    """No issuer runs in this module: an authority it never served is not Ready."""

    def ca(*args: str) -> subprocess.CompletedProcess[str]:
        argv = controlplane.pkiwarden_argv("ca", *args)
        return subprocess.run(
            argv, env=control_plane.env(), capture_output=True, text=True, check=False, timeout=60
        )

    created = apply(control_plane, authority("unserved"))
    assert created.returncode == 0, created.stderr
    try:
        status = ca("status")
        assert status.returncode == 1, status
        assert (
            "NOT READY: PkiAuthority unserved is not Ready: it has no status: no issuer has "
            "taken it up yet"
        ) in status.stdout
        assert any(line.split()[:1] == ["unserved"] for line in status.stdout.splitlines())
        # Asked to look, it finds the CA Secret missing (as metadata only) and says so.
        looked = ca("status", "--authority", "unserved", "--namespace", "pkiwarden-system")
        assert looked.returncode == 1, looked
        # Never had a CA (spec.generate): a first CA to come, not a lost one to restore.
        assert looked.stdout.splitlines()[0] == (
            'NOT READY: PkiAuthority unserved cannot sign: PkiAuthority "unserved" has no CA'
            " yet: the issuer generates its first one (spec.generate) into CA Secret"
            ' "pkiwarden-system/unserved-ca"; nothing needs doing, issuance follows once it'
            " exists (if it stays like this, kubectl describe pkica unserved says why)"
        )
        # kubectl shows the same Ready column (empty: no condition yet).
        table = control_plane.kubectl("get", "pkica", "unserved").stdout.splitlines()
        assert table[0].split()[:3] == ["NAME", "READY", "PHASE"], table
        rotate = ca("rotate", "--authority", "unservd")
        assert rotate.returncode == 1
        assert 'there is no PkiAuthority "unservd" (there are: ' in rotate.stderr
        assert rotate.stderr.rstrip().endswith('did you mean "unserved"?'), rotate.stderr
    finally:
        control_plane.kubectl("delete", "pkiauthority", "unserved", "--ignore-not-found")
