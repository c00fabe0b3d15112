"""The Helm chart is deploy/: generated from it, rendering its objects, refusing bad values.

No cluster is needed: the pinned kubectl's kustomize and the pinned helm
(built from the Go module proxy, ``make helm``) render both sides.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pkiwarden.local import controlplane
from pkiwarden.release import chart
from pkiwarden.release.version import package_version

Json = dict[str, Any]
CHART = chart.CHART_DIR
# The one annotation the chart adds: uninstall keeps the namespace (and the CA in it).
HELM_ONLY_ANNOTATIONS = set(chart.KEEP)


@pytest.fixture(scope="module")
def kubectl() -> Path:
    return controlplane.binaries().kubectl


def render(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), "template", "pkiwarden", str(CHART), "--include-crds", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def objects(text: str) -> dict[tuple[str, str, str, str], Json]:
    found: dict[tuple[str, str, str, str], Json] = {}
    for item in yaml.safe_load_all(text):
        if not item:
            continue
        ident = chart.key(item)
        assert ident not in found, f"{ident} rendered twice"
        found[ident] = item
    return found


def rendered(helm: Path, *args: str) -> dict[tuple[str, str, str, str], Json]:
    result = render(helm, *args)
    assert result.returncode == 0, result.stderr
    return objects(result.stdout)


def without_helm_annotations(item: Json) -> Json:
    copy: Json = json.loads(json.dumps(item))
    annotations = copy["metadata"].get("annotations", {})
    for name in HELM_ONLY_ANNOTATIONS:
        annotations.pop(name, None)
    if not annotations:
        copy["metadata"].pop("annotations", None)
    return copy


def kustomized(kubectl: Path, folder: Path) -> dict[tuple[str, str, str, str], Json]:
    return {chart.key(item): item for item in chart.kustomize(kubectl, folder)}


def test_committed_chart_is_what_make_chart_writes(kubectl: Path) -> None:
    expected = chart.files(chart.read_sources(kubectl))
    committed = {
        str(path.relative_to(CHART)): path.read_text()
        for path in CHART.rglob("*")
        if path.is_file()
    }
    stale = sorted(
        name
        for name in expected.keys() | committed.keys()
        if expected.get(name) != committed.get(name)
    )
    assert not stale, f"deploy/charts/pkiwarden differs from deploy/ in {stale}: run `make chart`"


def test_helm_template_with_default_values_is_kustomize_of_deploy(
    helm: Path, kubectl: Path
) -> None:
    from_helm = rendered(helm)
    from_kustomize = kustomized(kubectl, chart.DEPLOY)
    assert sorted(from_helm) == sorted(from_kustomize)
    for ident, item in from_kustomize.items():
        assert without_helm_annotations(from_helm[ident]) == item, ident


def test_monitoring_on_is_kustomize_with_the_monitoring_component(
    helm: Path, kubectl: Path
) -> None:
    from_helm = rendered(helm, "--set", "monitoring.enabled=true")
    from_kustomize = {
        chart.key(item): item for item in chart.with_component(kubectl, chart.DEPLOY / "monitoring")
    }
    assert sorted(from_helm) == sorted(from_kustomize)
    for ident, item in from_kustomize.items():
        assert without_helm_annotations(from_helm[ident]) == item, ident


def test_bootstrap_is_kustomize_of_the_dev_overlay(helm: Path, kubectl: Path) -> None:
    from_helm = rendered(helm, "--set", "bootstrap.enabled=true")
    from_kustomize = kustomized(kubectl, chart.DEPLOY / "overlays" / "dev")
    assert sorted(from_helm) == sorted(from_kustomize)
    for ident, item in from_kustomize.items():
        assert without_helm_annotations(from_helm[ident]) == item, ident


def test_another_authority_is_named_to_the_issuer_and_the_bootstrap_job(helm: Path) -> None:
    found = rendered(helm, "--set", "bootstrap.enabled=true", "--set", "authority=team-ca")
    by_kind = {(ident[1], ident[3]): item for ident, item in found.items()}
    for kind, name in (("Job", "pkiwarden-bootstrap-ca"), ("Deployment", "pkiwarden-issuer")):
        args = by_kind[(kind, name)]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[-1] == "--authority=team-ca", (kind, args)


def test_values_reach_the_objects(helm: Path) -> None:
    digest = "sha256:" + "0" * 64
    values = {
        "image": {"repository": "registry.example.com/pkiwarden", "digest": digest},
        "webhook": {
            "replicas": 3,
            "resources": {"requests": {"cpu": "1"}},
            "priorityClassName": "system-cluster-critical",
            "nodeSelector": {"pool": "infra"},
            "tolerations": [{"key": "infra", "operator": "Exists"}],
            "podAnnotations": {"team": "platform"},
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}},
            "topologySpreadConstraints": [],
            "failurePolicy": "Ignore",
            "timeoutSeconds": 10,
            "excludeNamespaces": ["kube-system", "legacy"],
        },
        "issuer": {"replicas": 1, "caSecretNames": ["pkiwarden-ca", "platform-ca"]},
        "tenants": ["app1", "app2"],
    }
    result = subprocess.run(
        [str(helm), "template", "pkiwarden", str(CHART), "-f", "-"],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    by_kind = {(ident[1], ident[3]): item for ident, item in objects(result.stdout).items()}
    webhook = by_kind[("Deployment", "pkiwarden-webhook")]
    pod = webhook["spec"]["template"]["spec"]
    assert webhook["spec"]["replicas"] == 3
    assert (
        pod["containers"][0]["image"]
        == f"registry.example.com/pkiwarden:{package_version()}@{digest}"
    )
    # Helm merges a map value into the default: the cpu request changes, the rest stays.
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "1", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["nodeSelector"] == {"pool": "infra"}
    assert pod["tolerations"] == [{"key": "infra", "operator": "Exists"}]
    assert "podAntiAffinity" in pod["affinity"]
    assert "topologySpreadConstraints" not in pod
    assert webhook["spec"]["template"]["metadata"]["annotations"] == {"team": "platform"}
    issuer = by_kind[("Deployment", "pkiwarden-issuer")]
    assert issuer["spec"]["replicas"] == 1
    assert issuer["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["topologyKey"] == (
        "kubernetes.io/hostname"
    )
    # A second authority's CA Secret is one more name, never all Secrets of the namespace.
    secret_rules = [
        (rule.get("resourceNames"), rule["verbs"])
        for rule in by_kind[("Role", "pkiwarden-issuer")]["rules"]
        if rule["resources"] == ["secrets"]
    ]
    assert secret_rules == [
        (None, ["create"]),
        (["pkiwarden-ca", "platform-ca"], ["get", "list", "watch", "update"]),
        (["pkiwarden-ca-next"], ["get"]),
    ]
    for hook in by_kind[("ValidatingWebhookConfiguration", "pkiwarden")]["webhooks"]:
        assert hook["failurePolicy"] == "Ignore" and hook["timeoutSeconds"] == 10
        excluded = hook["namespaceSelector"]["matchExpressions"][0]["values"]
        assert excluded == ["pkiwarden-system", "kube-system", "legacy"]
    # deploy/tenants, once per onboarded namespace.
    tenant = [item for item in yaml.safe_load_all(chart.TENANT_FILE.read_text()) if item]
    onboarded = [ident for ident in objects(result.stdout) if ident[2] in ("app1", "app2")]
    assert sorted(onboarded) == sorted(
        (item["apiVersion"], item["kind"], namespace, item["metadata"]["name"])
        for namespace in ("app1", "app2")
        for item in tenant
    )
    assert tenant


def test_helm_lint_passes(helm: Path) -> None:
    result = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("webhook.replicas=-1", "/webhook/replicas"),
        ("webhook.failurePolicy=Sometimes", "/webhook/failurePolicy"),
        ("issuer.replicas=two", "/issuer/replicas"),
        ("webhook.timeoutSeconds=60", "/webhook/timeoutSeconds"),
        ("tenants={App_1}", "/tenants/0"),
        ("issuer.caSecretNames=null", "/issuer"),
        ("issuer.nextCASecretNames={}", "/issuer/nextCASecretNames"),
        ("webhook.replica=3", "replica"),
    ],
)
def test_a_wrong_value_fails_naming_it(helm: Path, setting: str, named: str) -> None:
    result = render(helm, "--set", setting)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr
    assert "values don't meet the specifications of the schema" in result.stderr
