"""``helm install``, ``upgrade`` and ``uninstall`` of the chart, on a control plane of its own.

The chart is installed as a platform team would (``--create-namespace``,
the development CA, app1 and app2 onboarded through ``tenants``); the
processes of its Deployments then run on this machine under their
ServiceAccounts' tokens, as for ``deploy/`` (no kubelet here, see
:mod:`pkiwarden.local.install`). The registration and the issuer's Lease are
cluster-wide, hence a control plane of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pkiwarden.local import controlplane, install, issuer_process, webhook_process
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.release.chart import CHART_DIR
from shared.kube.client import PKIS, WEBHOOK_CONFIGURATIONS, ApiError, Kube

EXAMPLES = controlplane.REPO_ROOT / "deploy" / "examples"
RELEASE = "pkiwarden"
NAMESPACE = "pkiwarden-system"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    directory = tmp_path_factory.mktemp("helm") / "plane"
    try:
        yield controlplane.up(directory, die_with_caller=True)
    finally:
        controlplane.down(directory)


Helm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def run_helm(plane: ControlPlane, helm: Path) -> Helm:
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(helm), *args, "--namespace", NAMESPACE],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
            env={**os.environ, "KUBECONFIG": str(plane.kubeconfig), "HOME": str(plane.dir)},
        )
        if check:
            assert done.returncode == 0, f"helm {' '.join(args)}: {done.stdout}{done.stderr}"
        return done

    return run


@pytest.fixture(scope="module")
def installed(plane: ControlPlane, run_helm: Helm) -> ControlPlane:
    """The chart installed with a development CA and app1, app2 onboarded; processes running."""
    for namespace in ("app1", "app2"):
        plane.kubectl("create", "namespace", namespace)
    run_helm(
        "install", RELEASE, str(CHART_DIR), "--create-namespace",
        "--set", "bootstrap.enabled=true", "--set", "tenants={app1,app2}",
    )  # fmt: skip
    identities = install.identities(plane)
    webhook_process.start_deployed(plane, identities.webhook)
    issuer_process.start_deployed(plane, identities)
    return plane


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("webhook.replicas=-1", "at '/webhook/replicas': minimum: got -1, want 0"),
        ("webhook.failurePolicy=Sometimes", "at '/webhook/failurePolicy': value must be one of"),
    ],
)
def test_install_with_a_wrong_value_fails_naming_it_and_creates_nothing(
    plane: ControlPlane, run_helm: Helm, setting: str, named: str
) -> None:
    done = run_helm("install", "wrong", str(CHART_DIR), "--set", setting, check=False)
    assert done.returncode != 0
    assert named in done.stderr, done.stderr
    status = run_helm("status", "wrong", check=False)
    assert status.returncode != 0 and "release: not found" in status.stderr, status.stderr


def test_the_namespace_keeps_its_pod_security_label(installed: ControlPlane) -> None:
    labels = json.loads(
        installed.kubectl("get", "namespace", NAMESPACE, "-o", "jsonpath={.metadata.labels}").stdout
    )
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_the_demo_story_after_helm_install(installed: ControlPlane) -> None:
    plane = installed
    plane.kubectl("apply", "-f", str(EXAMPLES / "policy.yaml"))
    refused = plane.kubectl("apply", "-f", str(EXAMPLES / "app1.yaml"), check=False)
    assert refused.returncode != 0
    assert 'admission webhook "pkis.pkiwarden.dev" denied the request' in refused.stderr
    assert 'did you mean "app1"?' in refused.stderr
    plane.kubectl("apply", "-f", str(EXAMPLES / "app2.yaml"))
    plane.kubectl("wait", "--for=condition=Ready", "pki/app2-pki", "-n", "app2", "--timeout=90s")
    secret = json.loads(
        plane.kubectl("get", "secret", "app2-pki-tls", "-n", "app2", "-o", "json").stdout
    )
    assert {"tls.crt", "tls.key", "ca.crt"} <= set(secret["data"])


def registration(kube: Kube) -> dict[str, Any]:
    return kube.get(WEBHOOK_CONFIGURATIONS.path(name="pkiwarden"))


def test_upgrade_with_changed_values_under_load_fails_no_admission(
    installed: ControlPlane, run_helm: Helm
) -> None:
    """About 15 dry-run creates a second while helm upgrades the webhook's values."""
    kube = Kube.from_environment(str(installed.kubeconfig))
    before = registration(kube)
    assert all(hook["clientConfig"].get("caBundle") for hook in before["webhooks"])
    body = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": "loaded", "namespace": "app1"},
        "spec": {"serviceName": "app1"},
    }
    failures: list[str] = []
    sent = 0
    rate, seconds = 15, 20

    def load() -> None:
        nonlocal sent
        start = time.monotonic()
        for number in range(rate * seconds):
            delay = start + number / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                kube.create(PKIS.path("app1"), body, params={"dryRun": "All"}, timeout=15)
            except ApiError as error:
                failures.append(str(error))
            sent += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(seconds / 4)
        run_helm(
            "upgrade", RELEASE, str(CHART_DIR), "--reset-then-reuse-values",
            "--set", "webhook.timeoutSeconds=10",
            "--set", "webhook.excludeNamespaces={legacy}",
            "--set", "webhook.replicas=3",
            "--set", "webhook.podAnnotations.upgraded=yes",
        )  # fmt: skip
    finally:
        worker.join(timeout=seconds + 60)
    assert not worker.is_alive()
    assert sent == rate * seconds
    assert failures == [], failures[:3]
    after = registration(kube)
    for hook, old in zip(after["webhooks"], before["webhooks"], strict=True):
        assert hook["timeoutSeconds"] == 10
        assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == [NAMESPACE, "legacy"]
        # The webhook's own caBundle survives Helm's apply of the registration.
        assert hook["clientConfig"]["caBundle"] == old["clientConfig"]["caBundle"]
    replicas = installed.kubectl(
        "get", "deployment", "pkiwarden-webhook", "-n", NAMESPACE, "-o", "jsonpath={.spec.replicas}"
    ).stdout
    assert replicas == "3"


def test_uninstall_keeps_every_issued_secret_and_the_ca(
    installed: ControlPlane, run_helm: Helm
) -> None:
    plane = installed
    plane.kubectl("wait", "--for=condition=Ready", "pki/app2-pki", "-n", "app2", "--timeout=90s")

    def secrets() -> dict[str, str]:
        listed = json.loads(plane.kubectl("get", "secrets", "-A", "-o", "json").stdout)
        return {
            f"{item['metadata']['namespace']}/{item['metadata']['name']}": item["data"]["tls.crt"]
            for item in listed["items"]
            if item.get("type") == "kubernetes.io/tls"
        }

    issued = secrets()
    assert {"app2/app2-pki-tls", f"{NAMESPACE}/pkiwarden-ca"} <= set(issued)
    run_helm("uninstall", RELEASE)
    assert registration_gone(plane)
    gone = plane.kubectl("get", "deployment", "-n", NAMESPACE, "-o", "name").stdout
    assert gone == ""
    time.sleep(5)  # garbage collection would have acted by now
    assert secrets() == issued
    # The CRDs, and with them every Pki, stay.
    assert plane.kubectl("get", "pki", "app2-pki", "-n", "app2", check=False).returncode == 0


def registration_gone(plane: ControlPlane) -> bool:
    found = plane.kubectl("get", "validatingwebhookconfiguration", "pkiwarden", check=False)
    return found.returncode != 0 and "NotFound" in found.stderr


def test_reinstall_takes_up_the_kept_namespace_ca_and_secrets(
    installed: ControlPlane, run_helm: Helm
) -> None:
    """After the uninstall above: install again, the same certificate stays in place."""
    plane = installed

    def certificate() -> str:
        return plane.kubectl(
            "get", "secret", "app2-pki-tls", "-n", "app2", "-o", "jsonpath={.data.tls\\.crt}"
        ).stdout

    before = certificate()
    webhook_process.stop(plane)
    issuer_process.stop(plane)
    run_helm(
        "install", RELEASE, str(CHART_DIR), "--create-namespace",
        "--set", "bootstrap.enabled=true", "--set", "tenants={app1,app2}",
    )  # fmt: skip
    identities = install.identities(plane)
    webhook_process.start_deployed(plane, identities.webhook)
    issuer_process.start_deployed(plane, identities)
    plane.kubectl("wait", "--for=condition=Ready", "pki/app2-pki", "-n", "app2", "--timeout=90s")
    assert certificate() == before
    refused = plane.kubectl("apply", "-f", str(EXAMPLES / "app1.yaml"), check=False)
    assert 'did you mean "app1"?' in refused.stderr
