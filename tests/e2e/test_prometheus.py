"""A real Prometheus scrapes the webhook and the issuer and evaluates the shipped rules.

Prometheus (the Debian ``prometheus`` binary) runs on loopback with a 1 s
scrape and evaluation interval and the rules rendered with short ``for``
durations (the only difference from deploy/monitoring, see
``pkiwarden.monitoring.rules.short``). The README's story is driven through
kubectl: a typo is denied, a platform team's policy change makes app2's Pki
fail, and the not-Ready alert goes pending, then firing, and resolves once
the policy allows app2 again. Every dashboard query must return data.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from issuer.runtime.settings import Settings as IssuerSettings
from pkiwarden.local import controlplane, issuer_process, webhook_process
from pkiwarden.local.controlplane import REPO_ROOT, ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from pkiwarden.local.readiness import NotReadyError, free_port, http_ok
from pkiwarden.local.webhook_process import LocalWebhook
from pkiwarden.monitoring import manifests
from pkiwarden.monitoring.dashboard import queries
from pkiwarden.monitoring.rules import Settings, short
from shared.kube.client import Kube
from tests.e2e.helpers import delete_namespace, eventually, metrics_reader_token, running_issuer

NAMESPACE = "prom-e2e"
POLICY = "e2e-prom"
ALERT = "PkiwardenPkiNotReady"
RULES = short(Settings(), "5s")  # long enough for the pending state to be seen as well
PROCESS = "prometheus"


@dataclass(frozen=True)
class Prometheus:
    url: str

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:  # a query that does not parse, for one
            body = json.loads(error.read())
        assert body["status"] == "success", f"{params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self, alertname: str, /, **labels: str) -> list[dict[str, Any]]:
        """Active (pending or firing) alerts named ``alertname`` with these labels."""
        return [
            alert
            for alert in self.get("/api/v1/alerts")["alerts"]
            if alert["labels"].get("alertname") == alertname
            and all(alert["labels"].get(k) == v for k, v in labels.items())
        ]


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail(
            "the prometheus binary is not installed (Debian: apt-get install prometheus)",
            pytrace=False,
        )
    return found


def scrape_config(
    issuer_metrics: str, webhook: LocalWebhook, ca_file: Path, token_file: Path
) -> dict[str, Any]:
    """Jobs named as the ServiceMonitors name them, so the shipped selectors match.

    Both over HTTPS with a token bound to pkiwarden-metrics-reader, as the
    ServiceMonitors scrape: the webhook's certificate verified against its CA,
    the issuer's self-signed one not.
    """
    token = {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}}
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yaml"],
        "scrape_configs": [
            {
                "job_name": RULES.issuer_job,
                "scheme": "https",
                "tls_config": {"insecure_skip_verify": True},
                **token,
                "static_configs": [{"targets": [urllib.parse.urlsplit(issuer_metrics).netloc]}],
            },
            {
                "job_name": RULES.webhook_job,
                "scheme": "https",
                "tls_config": {"ca_file": str(ca_file)},
                **token,
                "static_configs": [{"targets": [f"127.0.0.1:{webhook.settings.port}"]}],
            },
        ],
    }


def unregister_webhook(plane: ControlPlane) -> None:
    """Stop the webhook and remove its registration: later modules must not fail closed."""
    webhook_process.stop(plane)
    plane.kubectl("delete", "validatingwebhookconfiguration", "pkiwarden", "--ignore-not-found")


@pytest.fixture(scope="module")
def webhook(control_plane: ControlPlane, crds: set[str]) -> Iterator[LocalWebhook]:
    try:
        try:
            started = webhook_process.start(control_plane)
        except NotReadyError as error:
            # A free port can be taken between choosing it and binding it on a
            # busy machine; without the registration the next start picks anew.
            print(f"webhook start failed, trying another port: {error}")
            unregister_webhook(control_plane)
            started = webhook_process.start(control_plane)
        yield started
    finally:
        unregister_webhook(control_plane)


@pytest.fixture(scope="module")
def issuer(control_plane: ControlPlane, kube: Kube) -> Iterator[LocalIssuer]:
    settings = IssuerSettings(
        namespace="pkiwarden-e2e-prom", workers=2, health_port=0, metrics_port=0
    )
    with running_issuer(control_plane, settings, "issuer-prom") as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(
    control_plane: ControlPlane,
    issuer: LocalIssuer,
    webhook: LocalWebhook,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Prometheus]:
    binary = prometheus_binary()
    directory = tmp_path_factory.mktemp("prometheus")
    (directory / "rules.yaml").write_text(manifests.to_yaml(manifests.rule_file(RULES)))
    (directory / "webhook-ca.crt").write_bytes(webhook.ca_bundle)
    (directory / "token").write_text(metrics_reader_token(control_plane))
    config = scrape_config(
        issuer_process.metrics_url(control_plane, issuer),
        webhook,
        directory / "webhook-ca.crt",
        directory / "token",
    )
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [
        binary,
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    control_plane.start_process(PROCESS, argv)  # `down` stops it if this test cannot
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        eventually(lambda: http_ok(f"{server.url}/-/ready"), 60, "Prometheus ready")
        yield server
    finally:
        controlplane.stop_process(control_plane.dir, PROCESS)


@pytest.fixture(scope="module")
def story(control_plane: ControlPlane, kube: Kube, prometheus: Prometheus) -> Iterator[None]:
    control_plane.kubectl("create", "namespace", NAMESPACE)
    apply(control_plane, policy(["app1", "app2"]))
    try:
        yield
    finally:
        control_plane.kubectl("delete", "pkipolicy", POLICY, "--ignore-not-found")
        delete_namespace(control_plane, NAMESPACE)


def policy(services: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": POLICY},
        "spec": {"namespaces": [NAMESPACE], "allowedServiceNames": services},
    }


def pki(name: str, service: str) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"serviceName": service},
    }


def apply(plane: ControlPlane, document: dict[str, Any], *, denied: bool = False) -> str:
    result = plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(document), check=False)
    assert (result.returncode != 0) == denied, result.stdout + result.stderr
    return result.stdout + result.stderr


def until(probe: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    return eventually(probe, timeout, what, every=0.25)


def test_scrapes_both_processes(prometheus: Prometheus) -> None:
    def healthy() -> dict[str, str] | None:
        targets = prometheus.get("/api/v1/targets")["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return health if set(health.values()) == {"up"} and len(health) == 2 else None

    health = until(healthy, "both targets up")
    assert set(health) == {RULES.issuer_job, RULES.webhook_job}
    leader = f'leader_election_master_status{{job="{RULES.issuer_job}"}}'
    assert until(lambda: prometheus.query(f"{leader} == 1"), "the issuer to lead")


def test_policy_change_fires_the_not_ready_alert_until_the_fix(
    control_plane: ControlPlane, prometheus: Prometheus, story: None
) -> None:
    where = {"namespace": NAMESPACE, "name": "app2-pki"}
    ready = "namespace_name:pkiwarden_certificate_ready:max"
    in_story = f'{ready}{{namespace="{NAMESPACE}"}}'

    # A typo is denied at apply time and counted as a rejection.
    output = apply(control_plane, pki("typo-pki", "appp1"), denied=True)
    assert 'did you mean "app1"?' in output
    apply(control_plane, pki("app1-pki", "app1"))
    apply(control_plane, pki("app2-pki", "app2"))
    until(lambda: len(prometheus.query(f"{in_story} == 1")) == 2, "both Pkis Ready in Prometheus")
    assert prometheus.alerts(ALERT, **where) == []

    # The platform team removes app2 from the policy. Deleting the Secret makes
    # the Pki need a certificate now rather than at its renewal time.
    apply(control_plane, policy(["app1"]))
    control_plane.kubectl("delete", "secret", "-n", NAMESPACE, "app2-pki-tls")

    firing = until(
        lambda: [a for a in prometheus.alerts(ALERT, **where) if a["state"] == "firing"],
        f"{ALERT} firing for {NAMESPACE}/app2-pki",
    )
    assert firing[0]["labels"]["severity"] == "warning"
    assert (
        f"Pki {NAMESPACE}/app2-pki has had no valid certificate"
        in (firing[0]["annotations"]["description"])
    )
    # Prometheus records the pending state it went through in the ALERTS series.
    pending = prometheus.get(
        "/api/v1/query",
        query=f'ALERTS{{alertname="{ALERT}", alertstate="pending", name="app2-pki"}}[5m]',
    )["result"]
    assert pending, "the alert was never pending"
    assert prometheus.alerts(ALERT, namespace=NAMESPACE, name="app1-pki") == []

    empty = [expr for expr in queries(RULES) if not prometheus.query(expr)]
    assert empty == [], "dashboard queries without data while a Pki fails"

    # The fix: the policy allows app2 again; the Pki is re-issued and the alert resolves.
    apply(control_plane, policy(["app1", "app2"]))
    until(lambda: not prometheus.alerts(ALERT, **where), f"{ALERT} to resolve")
    assert prometheus.query(f'{ready}{{namespace="{NAMESPACE}", name="app2-pki"}} == 1')


def test_the_component_builds_with_the_base(control_plane: ControlPlane, tmp_path: Path) -> None:
    """kubectl's kustomize accepts deploy/monitoring as a component of deploy/."""
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(REPO_ROOT / "deploy", tmp_path)],
        "components": [os.path.relpath(REPO_ROOT / "deploy" / "monitoring", tmp_path)],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    built = list(yaml.safe_load_all(control_plane.kubectl("kustomize", str(tmp_path)).stdout))
    kinds = {(d["kind"], d["metadata"]["name"]) for d in built}
    assert {
        ("PrometheusRule", "pkiwarden"),
        ("ServiceMonitor", "pkiwarden-webhook"),
        ("ServiceMonitor", "pkiwarden-issuer"),
        ("Service", "pkiwarden-issuer"),
        ("ConfigMap", "pkiwarden-dashboard"),
    } <= kinds
    (service,) = [
        d for d in built if d["kind"] == "Service" and d["metadata"]["name"] == "pkiwarden-webhook"
    ]
    assert service["metadata"]["labels"]["app.kubernetes.io/name"] == "pkiwarden-webhook"
    assert service["spec"]["ports"][0]["targetPort"] == "https"  # the base's spec is kept
