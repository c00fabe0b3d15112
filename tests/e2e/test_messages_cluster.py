"""The messages only a cluster can show, through the real API server, kubectl and processes.

Validation's words are tested as tables in the unit tests; these are the ones
that depend on what the cluster holds: a namespace that does not exist, a
namespace nobody onboarded, a CA Secret that is gone, an edit of a running
authority, and a renewal blocked while the certificate still serves. The
module runs its own issuer with its own CA Secret and PkiAuthority, so the
rest of the suite's CA is never touched.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from issuer.runtime.settings import Settings
from pkiwarden.local import controlplane
from pkiwarden.local.controlplane import REPO_ROOT, ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from pkiwarden.local.webhook_process import LocalWebhook
from shared.kube.client import PKI_AUTHORITIES, Kube
from tests.e2e.helpers import (
    TIMEOUT,
    apply,
    condition,
    create_pod,
    delete_namespace,
    events_on,
    eventually,
    get,
    leaf,
    one_line,
    running_issuer,
    secret_data,
    serial,
    volume,
    wait_ready,
)
from tests.e2e.helpers import web_pki as pki
from tests.e2e.helpers import web_policy as policy

SYSTEM_NS = "msgs-e2e-system"
CA_SECRET = "msgs-ca"
AUTHORITY = "msgs"


@pytest.fixture(scope="module")
def issuer(control_plane: ControlPlane, crds: set[str]) -> Iterator[LocalIssuer]:
    settings = Settings(
        namespace=SYSTEM_NS,
        ca_secret=CA_SECRET,
        authority=AUTHORITY,
        health_port=0,
        workers=2,
        leader_elect=False,
    )
    with running_issuer(control_plane, settings, "issuer-msgs") as running:
        yield running


@pytest.fixture
def ns(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace with a policy allowing service "web" (and "api") in it."""
    name = "msg-" + request.node.name.removeprefix("test_").replace("_", "-").lower()
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)[:50].strip("-")
    control_plane.kubectl("create", "namespace", name)
    apply(control_plane, policy(name, ["web", "api"]))
    yield name
    control_plane.kubectl("delete", "pkipolicy", name, "--ignore-not-found", "--wait=false")
    delete_namespace(control_plane, name)


def dry_run(plane: ControlPlane, document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return plane.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(document), check=False
    )


def warnings(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]


def ca_status(plane: ControlPlane, exit_status: int) -> subprocess.CompletedProcess[str] | None:
    """``pkiwarden ca status`` if it exits with ``exit_status`` (a probe for eventually)."""
    argv = controlplane.pkiwarden_argv("ca", "status", "--authority", AUTHORITY)
    result = subprocess.run(
        argv, env=plane.env(), capture_output=True, text=True, check=False, timeout=60
    )
    return result if result.returncode == exit_status else None


# --------------------------------------------------------------------------- the webhook


def test_a_policy_naming_a_namespace_that_does_not_exist_is_warned(
    control_plane: ControlPlane, webhook: LocalWebhook
) -> None:
    control_plane.kubectl("create", "namespace", "payments", check=False)
    typo: dict[str, Any] = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": "payments"},
        "spec": {"namespaces": ["paymnets"], "allowedServiceNames": ["db"]},
    }
    result = dry_run(control_plane, typo)
    assert result.returncode == 0, result.stderr
    assert warnings(result) == [
        'Warning: spec.namespaces[0]: "paymnets" does not exist (yet), so the policy selects'
        ' nothing there; did you mean "payments"?'
    ]
    fixed = {**typo, "spec": {**typo["spec"], "namespaces": ["payments"]}}
    assert warnings(dry_run(control_plane, fixed)) == []


def test_a_pki_in_a_namespace_not_onboarded_is_warned_until_it_is(
    control_plane: ControlPlane, webhook: LocalWebhook, ns: str
) -> None:
    result = dry_run(control_plane, pki(ns, "web"))
    assert result.returncode == 0, result.stderr
    fix = f"kubectl apply -n {ns} -f deploy/tenants/"
    assert warnings(result) == [
        f'Warning: metadata.namespace: "{ns}" is not onboarded; a cluster admin runs: {fix}'
    ]
    # The command the warning gives, run from the repository's root.
    control_plane.kubectl("apply", "-n", ns, "-f", str(REPO_ROOT / "deploy" / "tenants"))
    eventually(
        lambda: warnings(dry_run(control_plane, pki(ns, "web"))) == [],
        TIMEOUT,
        "the webhook to see the namespace onboarded",
    )


# --------------------------------------------------------------------------- the issuer


def test_ca_status_with_the_ca_secret_gone_says_what_next_and_exits_1(
    control_plane: ControlPlane, kube: Kube, issuer: LocalIssuer
) -> None:
    ready = eventually(
        lambda: ca_status(control_plane, 0),
        TIMEOUT,
        "the CA Ready",
    )
    assert "NOT READY" not in ready.stdout
    ca = get(control_plane, "secret", SYSTEM_NS, CA_SECRET)
    assert ca is not None
    saved = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": ca["type"],
        "metadata": {"name": CA_SECRET, "namespace": SYSTEM_NS, "labels": ca["metadata"]["labels"]},
        "data": ca["data"],
    }
    control_plane.kubectl("delete", "secret", CA_SECRET, "-n", SYSTEM_NS)
    try:
        gone = eventually(
            lambda: ca_status(control_plane, 1),
            TIMEOUT,
            "ca status to see the CA gone",
        )
        first, *_ = gone.stdout.splitlines()
        assert first == (
            f'NOT READY: PkiAuthority {AUTHORITY} cannot sign: CA Secret "{SYSTEM_NS}/{CA_SECRET}"'
            " is missing or holds no readable tls.crt and tls.key: no certificate is issued or"
            " renewed until it is back; spec.generate makes only the next CA, at a rotation,"
            " never a lost one. Restore it from a backup (issued certificates keep verifying);"
            " or create it with a new CA (type kubernetes.io/tls, tls.crt and tls.key), after"
            " which every certificate is re-issued"
        )
        assert gone.stdout.count("Restore it from a backup") == 1, "said once, first"
        status = kube.get(PKI_AUTHORITIES.path(name=AUTHORITY))["status"]
        assert "activeNotAfter" not in status, "no expiry of a CA that is gone"
        assert status["trusted"] == []
    finally:
        if get(control_plane, "secret", SYSTEM_NS, CA_SECRET) is None:
            apply(control_plane, saved)
    # The recovery the message gives: restored from the backup, the CA signs again.
    eventually(lambda: ca_status(control_plane, 0), TIMEOUT, "the restored CA Ready")


def test_editing_generate_warns_that_it_applies_at_the_next_rotation(
    control_plane: ControlPlane, webhook: LocalWebhook, issuer: LocalIssuer
) -> None:
    patch = {"spec": {"generate": {"commonName": "Acme Platform CA"}}}
    result = control_plane.kubectl(
        "patch", "pkica", AUTHORITY, "--type=merge", "--dry-run=server", "-p", json.dumps(patch)
    )
    assert warnings(result) == [
        "Warning: spec.generate: is used for the next CA only, made at the next rotation (its"
        " renewal time, or pkiwarden ca rotate)"
    ]


def test_a_blocked_renewal_tells_the_pod_its_certificate_still_serves(
    control_plane: ControlPlane, kube: Kube, issuer: LocalIssuer, ns: str
) -> None:
    apply(control_plane, pki(ns, "web"))
    obj = wait_ready(control_plane, ns, "web")
    issued = serial(control_plane, ns, "web-tls")
    pod = create_pod(kube, ns, "web-1", volume("web-tls"))
    apply(control_plane, policy(ns, ["api"]))  # the renewal is blocked from now on

    def warned() -> str | None:
        found = events_on(kube, pod, "NotAllowed")
        return one_line(found[0]["message"]) if found else None

    told = eventually(warned, TIMEOUT, "the Pod told that renewal is blocked")
    until = obj["status"]["notAfter"]
    assert told.startswith(
        f"certificate {issued} in Secret web-tls is valid until {until}; renewal is blocked:"
        f' spec.serviceName: "web" in Pki web is not allowed in namespace "{ns}"'
    ), told
    assert condition(get(control_plane, "pki", ns, "web"))["status"] == "True"


def test_a_pki_without_duration_gets_its_policys_shorter_maximum(
    control_plane: ControlPlane, issuer: LocalIssuer, ns: str
) -> None:
    """maxDuration 720h below the default 2160h: once every such Pki was refused; now the
    bound is its default, issued as such, and the policy's author is warned."""
    bounded = policy(ns, ["web", "api"])
    bounded["spec"]["maxDuration"] = "720h"
    result = control_plane.kubectl("apply", "-f", "-", input=json.dumps(bounded))
    assert warnings(result) == [
        'Warning: spec.maxDuration: "720h" is below the default spec.duration (2160h); a Pki'
        " that leaves spec.duration out gets 720h"
    ]
    apply(control_plane, pki(ns, "web"))
    wait_ready(control_plane, ns, "web")
    certificate = leaf(secret_data(control_plane, ns, "web-tls"))
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    # notBefore is backdated by up to five minutes against clock skew.
    assert timedelta(hours=720) <= lifetime <= timedelta(hours=720, minutes=5), lifetime
