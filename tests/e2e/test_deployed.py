"""pkiwarden installed from ``deploy/`` as shipped, on a control plane with its controllers.

``kubectl apply -k deploy/overlays/dev``, then the two Deployments' processes
under their ServiceAccount tokens; the webhook listens on the ClusterIP of
``Service pkiwarden-webhook`` and the API server reaches it through the
Service-referenced registration, as in a cluster. The controller-manager
garbage-collects, deletes namespaces and runs Deployments, so what depends
on those is tested here. Runs on a control plane of its own: the registration
is cluster-wide and would judge every other module's Pkis.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import json
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from pkiwarden.local import controlplane, install, issuer_process, webhook_process
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from pkiwarden.local.webhook_process import LocalWebhook
from shared.kube.client import (
    NAMESPACES,
    PKI_POLICIES,
    PKIS,
    PODS,
    SECRETS,
    WEBHOOK_CONFIGURATIONS,
    ApiError,
    Kube,
)
from tests.e2e.helpers import (
    container,
    create_pki,
    events_on,
    eventually,
    exists,
    json_log,
    kill_9,
    live_processes,
    log_size,
    metrics_reader_token,
    policy_body,
    ready,
    volume,
)

POLICY = "deployed-e2e"
SERVICE = "web"
_counter = itertools.count()


@dataclass(frozen=True)
class Deployed:
    plane: ControlPlane
    kube: Kube
    webhook: LocalWebhook
    issuer: LocalIssuer


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    directory: Path = tmp_path_factory.mktemp("deployed") / "plane"
    try:
        plane = controlplane.up(directory, die_with_caller=True)
        install.install(plane)
        identities = install.identities(plane)
        webhook = webhook_process.start_deployed(plane, identities.webhook)
        issuer = issuer_process.start_deployed(plane, identities)
        yield Deployed(plane, Kube.from_environment(str(plane.kubeconfig)), webhook, issuer)
    finally:
        controlplane.down(directory)


def onboard_with_policy(deployed: Deployed, name: str) -> str:
    """Onboard ``name`` under a policy allowing service "web"; returns the policy's name.

    Returns once the webhook's policy cache has the policy (a dry-run Pki is
    admitted), so a Pki created next is not denied for want of it.
    """
    install.onboard(deployed.plane, name)
    policy = f"{POLICY}-{name}"
    deployed.kube.create(PKI_POLICIES.path(), policy_body(policy, name, [SERVICE]))

    def admitted() -> bool:
        probe = pki_manifest(name, "probe", SERVICE)
        dry_run = ("create", "--dry-run=server", "-f", "-")
        return deployed.plane.kubectl(*dry_run, input=probe, check=False).returncode == 0

    eventually(admitted, 30, f"the webhook to know PkiPolicy {policy}")
    return policy


@pytest.fixture
def namespace(deployed: Deployed) -> Iterator[str]:
    """An onboarded namespace whose policy allows service "web"; deleted afterwards."""
    name = f"deployed-{next(_counter)}"
    policy = onboard_with_policy(deployed, name)
    yield name
    deployed.plane.kubectl("delete", "pkipolicy", policy, "--ignore-not-found")
    deployed.plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def foreign_secret(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": {"owner": "someone else"},
    }
    return kube.create(SECRETS.path(namespace), body)


# --------------------------------------------------------------------------- the Service path


def test_the_registration_is_deploys_and_the_webhook_serves_its_service(
    deployed: Deployed,
) -> None:
    registration = deployed.kube.get(WEBHOOK_CONFIGURATIONS.path(name="pkiwarden"))
    for hook in registration["webhooks"]:
        config = hook["clientConfig"]
        assert "url" not in config
        assert config["service"] == {
            "namespace": "pkiwarden-system",
            "name": "pkiwarden-webhook",
            "path": "/validate",
            "port": 443,
        }
        assert config["caBundle"], "the webhook keeps the caBundle current"
    address, port = install.service_address(deployed.plane)
    assert (deployed.webhook.settings.host, deployed.webhook.settings.port) == (address, port)
    assert ipaddress.ip_address(address) in ipaddress.ip_network(deployed.plane.service_cidr)


def test_a_typo_is_denied_through_the_service(deployed: Deployed, namespace: str) -> None:
    body = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": "typo", "namespace": namespace},
        "spec": {"serviceName": "wbe"},
    }
    with pytest.raises(ApiError) as denied:
        deployed.kube.create(PKIS.path(namespace), body)
    assert f'spec.serviceName: "wbe" is not allowed in namespace "{namespace}"' in str(denied.value)
    assert 'did you mean "web"?' in str(denied.value)


# --------------------------------------------------------------------------- metrics


def status_of(url: str, context: ssl.SSLContext, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def test_metrics_answer_only_tokens_bound_to_the_reader_role(deployed: Deployed) -> None:
    """Both processes: HTTPS, TokenReview then SubjectAccessReview; the probes stay plain."""
    plane = deployed.plane
    reader = metrics_reader_token(plane)
    plane.kubectl("create", "serviceaccount", "nosy", "-n", "default", check=False)
    nosy = plane.kubectl("create", "token", "nosy", "-n", "default").stdout.strip()
    self_signed = ssl.create_default_context()
    self_signed.check_hostname = False
    self_signed.verify_mode = ssl.CERT_NONE
    webhook_ca = ssl.create_default_context(cadata=deployed.webhook.ca_bundle.decode())
    webhook_ca.check_hostname = False  # the ClusterIP, not the Service name
    targets = [
        (issuer_process.metrics_url(plane, deployed.issuer), self_signed, "workqueue_depth"),
        (f"{deployed.webhook.url}/metrics", webhook_ca, "pkiwarden_admission"),
    ]
    for url, context, family in targets:
        assert status_of(url, context)[0] == 401, url
        refused = status_of(url, context, nosy)
        assert refused[0] == 403, url
        assert "pkiwarden-metrics-reader" in refused[1]
        allowed = status_of(url, context, reader)
        assert allowed[0] == 200 and family in allowed[1], url
    with urllib.request.urlopen(f"{deployed.issuer.health_url}/readyz", timeout=10) as probe:
        assert probe.status == 200
    try:
        urllib.request.urlopen(f"{deployed.issuer.health_url}/metrics", timeout=10)
        plain = 200
    except urllib.error.HTTPError as error:
        plain = error.code
    assert plain == 404, "the plain health port must not serve /metrics"


# --------------------------------------------------------------------------- quotas


def quota(plane: ControlPlane, namespace: str, name: str, resource: str, hard: int) -> None:
    """A ResourceQuota, once the quota controller has counted what it covers.

    Until then admission refuses every create it covers ("status unknown").
    The controller-manager finds a newly installed kind (the CRDs of this
    module's install) at its next 30 s discovery; a quota it synced before
    that stays uncounted until its 5 min resync, so it is made again.
    """
    body = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"hard": {resource: str(hard)}},
    }

    def counted() -> bool:
        found = plane.kubectl("get", "resourcequota", name, "-n", namespace, "-o", "json")
        return resource in (json.loads(found.stdout).get("status", {}).get("used") or {})

    deadline = time.monotonic() + 120
    while True:
        plane.kubectl("apply", "-f", "-", input=json.dumps(body))
        wait_until = time.monotonic() + 10
        while time.monotonic() < wait_until:
            if counted():
                return
            time.sleep(0.5)
        assert time.monotonic() < deadline, f"the quota controller never counted {resource}"
        plane.kubectl("delete", "resourcequota", name, "-n", namespace)


def pki_manifest(namespace: str, name: str, service: str) -> str:
    return json.dumps(
        {
            "apiVersion": "pkiwarden.dev/v1alpha1",
            "kind": "Pki",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"serviceName": service},
        }
    )


def test_a_quota_on_pkis_refuses_in_its_own_words_and_pkiwardens_come_first(
    deployed: Deployed, namespace: str
) -> None:
    plane, kube = deployed.plane, deployed.kube
    create_pki(kube, namespace, "first", serviceName=SERVICE)
    quota(plane, namespace, "pkis", "count/pkis.pkiwarden.dev", 1)
    over = plane.kubectl(
        "create", "-f", "-", input=pki_manifest(namespace, "second", SERVICE), check=False
    )
    assert over.returncode != 0
    assert (
        "exceeded quota: pkis, requested: count/pkis.pkiwarden.dev=1,"
        " used: count/pkis.pkiwarden.dev=1, limited: count/pkis.pkiwarden.dev=1"
    ) in over.stderr, over.stderr
    assert "Warning:" not in over.stderr  # no warning of ours for an object that was refused
    # The webhook answers before the quota: a typo is told as a typo, fixable first.
    typo = plane.kubectl(
        "create", "-f", "-", input=pki_manifest(namespace, "typo", "wbe"), check=False
    )
    assert typo.returncode != 0
    assert 'spec.serviceName: "wbe" is not allowed' in typo.stderr, typo.stderr
    assert 'did you mean "web"?' in typo.stderr
    assert "exceeded quota" not in typo.stderr
    eventually(lambda: ready(kube, namespace, "first"), 60, "the Pki under the quota Ready")


def test_a_quota_on_secrets_is_named_by_the_issuer_not_taken_for_missing_rbac(
    deployed: Deployed, namespace: str
) -> None:
    plane, kube = deployed.plane, deployed.kube
    quota(plane, namespace, "secrets", "count/secrets", 0)
    pki = create_pki(kube, namespace, "capped", serviceName=SERVICE)

    def refused() -> str | None:
        found = kube.get(PKIS.path(namespace, "capped"))
        for condition in (found.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready" and "quota" in str(condition.get("message")):
                return str(condition["message"])
        return None

    message = eventually(refused, 60, "the Ready condition to name the quota")
    assert message.startswith(
        'a ResourceQuota of this namespace refused to let the issuer write Secret "capped-tls"'
        " (exceeded quota: secrets, requested: count/secrets=1, used: count/secrets=0,"
        " limited: count/secrets=0)"
    ), message
    assert "onboard" not in message
    assert any("exceeded quota" in event["message"] for event in events_on(kube, pki)), pki


# --------------------------------------------------------------------------- controller-manager


def test_deleting_a_pki_collects_its_secret_and_never_a_foreign_one(
    deployed: Deployed, namespace: str
) -> None:
    kube = deployed.kube
    create_pki(kube, namespace, "owned", serviceName=SERVICE)
    eventually(lambda: ready(kube, namespace, "owned"), 60, "Pki owned Ready")
    foreign = foreign_secret(kube, namespace, "taken-tls")
    create_pki(kube, namespace, "taken", serviceName=SERVICE, secretName="taken-tls")

    kube.delete(PKIS.path(namespace, "owned"))
    kube.delete(PKIS.path(namespace, "taken"))
    eventually(
        lambda: not exists(kube, SECRETS.path(namespace, "owned-tls")),
        90,
        "the issuer to delete the Secret of the deleted Pki",
    )
    after = kube.get(SECRETS.path(namespace, "taken-tls"))
    assert after["metadata"]["resourceVersion"] == foreign["metadata"]["resourceVersion"]
    assert not after["metadata"].get("ownerReferences")


def test_deleting_a_namespace_with_pkis_completes_without_an_error_loop(
    deployed: Deployed,
) -> None:
    plane, kube = deployed.plane, deployed.kube
    name = f"doomed-{next(_counter)}"
    onboard_with_policy(deployed, name)
    try:
        for pki in ("one", "two", "three"):
            create_pki(kube, name, pki, serviceName=SERVICE)
        for pki in ("one", "two", "three"):
            eventually(lambda pki=pki: ready(kube, name, pki), 60, f"Pki {pki} Ready")
        deleted_at = log_size(plane, deployed.issuer.name)
        kube.delete(NAMESPACES.path(name=name))
        eventually(
            lambda: not exists(kube, NAMESPACES.path(name=name)),
            120,
            "the namespace controller to finish deleting the namespace",
        )
        gone_at = log_size(plane, deployed.issuer.name)
        time.sleep(5)  # long enough for two retries of a loop that kept going
        errors = [
            line
            for line in json_log(plane, deployed.issuer.name, deleted_at)
            if line.get("level") in ("error", "ERROR") and name in str(line)
        ]
        assert errors == []
        later = [
            line for line in json_log(plane, deployed.issuer.name, gone_at) if name in str(line)
        ]
        assert later == [], "the issuer kept working on a namespace that is gone"
    finally:
        plane.kubectl("delete", "pkipolicy", f"{POLICY}-{name}", "--ignore-not-found")


def deployment(name: str, secret: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container()], **volume(secret)},
            },
        },
    }


def pods_of(kube: Kube, namespace: str, app: str) -> list[dict[str, Any]]:
    page = kube.get(PODS.path(namespace), params={"labelSelector": f"app={app}"})
    return list(page.get("items") or [])


def test_new_pods_of_a_deployment_whose_pki_fails_are_told(
    deployed: Deployed, namespace: str
) -> None:
    kube = deployed.kube
    foreign_secret(kube, namespace, "app-tls")
    create_pki(kube, namespace, "app", serviceName=SERVICE, secretName="app-tls")
    plane = deployed.plane
    plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(deployment("app", "app-tls", 1))
    )
    (first,) = eventually(lambda: pods_of(kube, namespace, "app"), 30, "the ReplicaSet's Pod")
    eventually(lambda: events_on(kube, first, "SecretConflict"), 60, "the first Pod to be told")

    plane.kubectl("scale", "deployment", "app", "-n", namespace, "--replicas=3")

    def new_pods() -> list[dict[str, Any]]:
        pods = pods_of(kube, namespace, "app")
        new = [pod for pod in pods if pod["metadata"]["uid"] != first["metadata"]["uid"]]
        return new if len(new) == 2 else []

    for pod in eventually(new_pods, 30, "the ReplicaSet's two new Pods"):
        created = dt.datetime.fromisoformat(pod["metadata"]["creationTimestamp"])
        remaining = 10 - (dt.datetime.now(dt.UTC) - created).total_seconds()
        eventually(
            lambda pod=pod: events_on(kube, pod, "SecretConflict"),
            max(remaining, 0),
            f"Pod {pod['metadata']['name']} to be told within 10 s of its creation",
        )


# --------------------------------------------------------------------------- the webhook


def served_serial(webhook: LocalWebhook) -> int:
    pem = ssl.get_server_certificate((webhook.settings.host, webhook.settings.port))
    return int(x509.load_pem_x509_certificate(pem.encode()).serial_number)


def test_rotation_under_load_through_the_service_fails_no_admission(
    deployed: Deployed, namespace: str
) -> None:
    """About 50 dry-run creates a second for 16 s; the serving certificate rotates at 8 s."""
    kube, webhook = deployed.kube, deployed.webhook
    body = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": "loaded", "namespace": namespace},
        "spec": {"serviceName": SERVICE},
    }
    before = served_serial(webhook)
    failures: list[str] = []
    sent = 0
    rate, seconds = 50, 16

    def load() -> None:
        nonlocal sent
        start = time.monotonic()
        for number in range(rate * seconds):
            delay = start + number / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                kube.create(PKIS.path(namespace), body, params={"dryRun": "All"}, timeout=10)
            except ApiError as error:
                failures.append(str(error))
            sent += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(seconds / 2)
        settings = webhook.settings
        subprocess.run(
            controlplane.pkiwarden_argv(
                "webhook", "certs", "--rotate", "--write-files",
                f"--namespace={settings.certs.namespace}",
                f"--service-name={settings.certs.service_name}",
                f"--cert-dir={settings.cert_dir}",
                f"--kubeconfig={settings.kubeconfig}",
            ),
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        eventually(lambda: served_serial(webhook) != before, 15, "the new certificate served")
    finally:
        worker.join(timeout=seconds + 60)
    assert not worker.is_alive()
    assert sent == rate * seconds
    assert failures == [], failures[:3]


def test_webhook_killed_fails_closed_except_in_its_own_namespace_then_works_again(
    deployed: Deployed, namespace: str
) -> None:
    plane, kube = deployed.plane, deployed.kube
    registration = kube.get(WEBHOOK_CONFIGURATIONS.path(name="pkiwarden"))
    good = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": "good", "namespace": namespace},
        "spec": {"serviceName": SERVICE},
    }
    kill_9(plane, webhook_process.PROCESS)
    try:
        down = plane.kubectl(
            "apply", "--dry-run=server", "-f", "-", input=json.dumps(good), check=False
        )
        message = " ".join(down.stderr.split())
        assert down.returncode != 0
        assert 'failed calling webhook "pkis.pkiwarden.dev"' in message, message
        assert "https://pkiwarden-webhook.pkiwarden-system.svc:443/validate" in message, message
        assert "connection refused" in message, message
        # The webhook's own namespace is never sent to it, so pkiwarden stays repairable.
        system = dict(good, metadata={"name": "system", "namespace": "pkiwarden-system"})
        repaired = plane.kubectl("apply", "-f", "-", input=json.dumps(system), check=False)
        assert repaired.returncode == 0, repaired.stderr
    finally:
        webhook_process.restart(plane, deployed.webhook)
    up = plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(good), check=False)
    assert up.returncode == 0, up.stderr
    after = kube.get(WEBHOOK_CONFIGURATIONS.path(name="pkiwarden"))
    assert after["metadata"]["resourceVersion"] == registration["metadata"]["resourceVersion"]


# --------------------------------------------------------------------------- last: down


def processes_mentioning(directory: Path) -> list[str]:
    """Command lines of live processes that name ``directory`` (every one we start does)."""
    return [
        raw.replace(b"\0", b" ").decode(errors="replace")
        for _, fields, raw in live_processes()
        if fields[0] != "Z" and str(directory).encode() in raw
    ]


def test_local_down_leaves_no_process_behind(deployed: Deployed) -> None:
    """Runs last in this module: it takes the control plane down."""
    directory = deployed.plane.dir
    running = processes_mentioning(directory)
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert any(name in line for line in running), name
    assert sum("pkiwarden.cli" in line for line in running) == 2, running
    down = subprocess.run(
        [*controlplane.pkiwarden_argv("local", "down", f"--dir={directory}")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert down.returncode == 0, down.stderr
    assert processes_mentioning(directory) == []
    assert not directory.exists()
