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


def test_sharding_is_kustomize_with_the_sharding_component(helm: Path, kubectl: Path) -> None:
    """deploy/sharding's three shards over three replicas are the values issuer.shards and
    issuer.replicas: the issuer's argument and the Role for the shard and member Leases."""
    from_helm = rendered(helm, "--set", "issuer.shards=3", "--set", "issuer.replicas=3")
    from_kustomize = {
        chart.key(item): item for item in chart.with_component(kubectl, chart.DEPLOY / "sharding")
    }
    assert sorted(from_helm) == sorted(from_kustomize)
    for ident, item in from_kustomize.items():
        assert without_helm_annotations(from_helm[ident]) == item, ident
    by_kind = {(ident[1], ident[3]): item for ident, item in from_helm.items()}
    issuer = by_kind[("Deployment", "pkiwarden-issuer")]["spec"]
    assert issuer["template"]["spec"]["containers"][0]["args"][-1] == "--shards=3"
    # No replica of an old count may outlive a change of the count: they would not exclude.
    assert issuer["strategy"] == {"type": "Recreate"}
    assert by_kind[("Role", "pkiwarden-issuer-shards")]["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "update", "delete"],
        }
    ]
    binding = by_kind[("RoleBinding", "pkiwarden-issuer-shards")]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pkiwarden-issuer", "namespace": "pkiwarden-system"}
    ]


def lease_rules(objects: dict[tuple[str, str, str, str], Json]) -> list[tuple[str, Json]]:
    """Every rule on Leases, with the Role or ClusterRole that holds it."""
    return [
        (ident[3], rule)
        for ident, item in objects.items()
        if ident[1] in ("Role", "ClusterRole")
        for rule in item.get("rules") or []
        if "leases" in rule.get("resources", [])
    ]


def test_one_shard_by_default_renders_the_one_lease_and_no_shards_argument(helm: Path) -> None:
    for args in ((), ("--set", "issuer.shards=1", "--set", "issuer.replicas=3")):
        found = rendered(helm, *args)
        assert lease_rules(found) == [
            (
                "pkiwarden-issuer",
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["create"],
                },
            ),
            (
                "pkiwarden-issuer",
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "resourceNames": ["pkiwarden-issuer"],
                    "verbs": ["get", "update", "patch"],
                },
            ),
        ], args
        issuer = found[("apps/v1", "Deployment", "pkiwarden-system", "pkiwarden-issuer")]
        container = issuer["spec"]["template"]["spec"]["containers"][0]
        assert not [arg for arg in container["args"] if arg.startswith("--shards")], args
        assert "strategy" not in issuer["spec"], args  # rolling, as deploy/ ships it


def test_another_shard_count_is_one_argument_and_the_same_grant(helm: Path) -> None:
    found = rendered(helm, "--set", "issuer.shards=5", "--set", "authority=team-ca")
    issuer = found[("apps/v1", "Deployment", "pkiwarden-system", "pkiwarden-issuer")]
    args = issuer["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-2:] == ["--authority=team-ca", "--shards=5"]
    assert issuer["spec"]["replicas"] == 2  # the replicas stay a value of their own
    assert sorted(role for role, _rule in lease_rules(found)) == [
        "pkiwarden-issuer",
        "pkiwarden-issuer",
        "pkiwarden-issuer-shards",
    ]


def notes(helm: Path, *args: str) -> str:
    """What ``helm install`` prints after NOTES (a client-side dry run: no cluster)."""
    result = subprocess.run(
        [str(helm), "install", "pkiwarden", str(CHART), "--dry-run=client", *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": "/dev/null"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:\n", 1)[1]


def test_shards_on_one_replica_install_but_the_notes_say_it_divides_nothing(helm: Path) -> None:
    warning = "issuer.shards is 3 but issuer.replicas is 1: one replica leads every shard"
    assert warning in notes(helm, "--set", "issuer.shards=3", "--set", "issuer.replicas=1")
    for args in ((), ("--set", "issuer.shards=3", "--set", "issuer.replicas=3")):
        told = notes(helm, *args)
        assert "get pods,leases" in told and "issuer.shards is" not in told, args


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
        ("issuer.shards=0", "at '/issuer/shards': minimum: got 0, want 1"),
        ("issuer.shards=three", "/issuer/shards"),
    ],
)
def test_a_wrong_value_fails_naming_it(helm: Path, setting: str, named: str) -> None:
    result = render(helm, "--set", setting)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr
    assert "values don't meet the specifications of the schema" in result.stderr
