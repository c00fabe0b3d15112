"""TARGET parsing, Secret references of a pod spec, and the roles teams get."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from issuer.controllers.pkis.reporting.consumers import Consumption, consumptions
from pkiwarden.why.secret_uses import How, Use, secret_uses
from pkiwarden.why.targets import Kind, Target, TargetError, parse_target, pod_spec

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("pod/app2-0", Kind.POD, "app2-0"),
        ("pods/app2-0", Kind.POD, "app2-0"),
        ("po/app2-0", Kind.POD, "app2-0"),
        ("deploy/app2", Kind.DEPLOYMENT, "app2"),
        ("Deployment/app2", Kind.DEPLOYMENT, "app2"),
        ("sts/db", Kind.STATEFULSET, "db"),
        ("ds/agent", Kind.DAEMONSET, "agent"),
        ("rs/app2-5d8f", Kind.REPLICASET, "app2-5d8f"),
        ("job/migrate", Kind.JOB, "migrate"),
        ("cj/nightly", Kind.CRONJOB, "nightly"),
        ("pki/app1-pki", Kind.PKI, "app1-pki"),
        ("pkis.pkiwarden.dev/app1-pki", Kind.PKI, "app1-pki"),
        ("secret/app2-pki-tls", Kind.SECRET, "app2-pki-tls"),
    ],
)
def test_targets_as_kubectl_spells_them(text: str, kind: Kind, name: str) -> None:
    assert parse_target(text, "ns") == Target(kind, name, "ns")


@pytest.mark.parametrize("text", ["app2-0", "pod/", "/app2", "service/app2", "pod/a/b", ""])
def test_bad_targets_say_what_is_accepted(text: str) -> None:
    with pytest.raises(TargetError, match="TARGET is KIND/NAME with KIND one of pod, deployment"):
        parse_target(text, "ns")


def test_pod_spec_of_each_workload() -> None:
    spec = {"containers": [{"name": "a"}]}
    template = {"spec": {"template": {"spec": spec}}}
    assert pod_spec(Kind.POD, {"spec": spec}) == spec
    assert pod_spec(Kind.DEPLOYMENT, template) == spec
    assert pod_spec(Kind.JOB, template) == spec
    assert pod_spec(Kind.CRONJOB, {"spec": {"jobTemplate": template}}) == spec
    assert pod_spec(Kind.DEPLOYMENT, {"spec": {"template": "broken"}}) == {}
    assert pod_spec(Kind.PKI, {"spec": spec}) == {}


SPEC: dict[str, Any] = {
    "volumes": [
        {"name": "tls", "secret": {"secretName": "web-tls"}},
        {"name": "cfg", "configMap": {"name": "web-tls"}},
        {
            "name": "all",
            "projected": {"sources": [{"secret": {"name": "web-tls"}}, {"secret": {"name": "ca"}}]},
        },
    ],
    "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "ca"}}]}],
    "containers": [
        {
            "name": "app",
            "env": [
                {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "web-tls", "key": "k"}}},
                {"name": "PLAIN", "value": "x"},
            ],
        },
        {"name": "side", "envFrom": [{"configMapRef": {"name": "ca"}}]},
    ],
    "ephemeralContainers": [{"name": "debug", "env": "not a list"}],
}


def test_every_secret_and_every_way_in_spec_order() -> None:
    assert secret_uses(SPEC) == {
        "web-tls": (
            Use(How.VOLUME, "tls"),
            Use(How.PROJECTED_VOLUME, "all"),
            Use(How.ENV, "app"),
        ),
        "ca": (Use(How.PROJECTED_VOLUME, "all"), Use(How.ENV_FROM, "init")),
    }
    assert secret_uses({}) == {} and secret_uses({"volumes": "x"}) == {}


def test_the_same_ways_the_issuer_tells_pods_by() -> None:
    """``why`` and the issuer must agree on who uses a Secret, or a told Pod goes unexplained."""
    ways = {
        How.VOLUME: Consumption.VOLUME,
        How.PROJECTED_VOLUME: Consumption.PROJECTED_VOLUME,
        How.ENV: Consumption.ENV,
        How.ENV_FROM: Consumption.ENV_FROM,
    }
    pod = {"spec": SPEC}
    for name, uses in secret_uses(SPEC).items():
        assert {ways[use.how] for use in uses} == consumptions(pod, name)


def documents(path: Path) -> dict[str, dict[str, Any]]:
    """The objects of a manifest by ``Kind/name``."""
    return {
        f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(path.read_text()) if d
    }


def test_team_roles_aggregate_into_view_edit_and_admin() -> None:
    roles = {
        name.split("/")[1]: role for name, role in documents(DEPLOY / "rbac" / "users.yaml").items()
    }
    prefix = "rbac.authorization.k8s.io/aggregate-to-"
    labels = {
        name: {k[len(prefix) :] for k in role["metadata"]["labels"]} for name, role in roles.items()
    }
    assert labels == {
        "pkiwarden-view": {"view", "edit", "admin"},
        "pkiwarden-edit": {"edit", "admin"},
    }
    assert all(v == "true" for role in roles.values() for v in role["metadata"]["labels"].values())
    view = roles["pkiwarden-view"]["rules"]
    assert view == [
        {
            "apiGroups": ["pkiwarden.dev"],
            "resources": ["pkis", "pkis/status"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    edit = roles["pkiwarden-edit"]["rules"]
    assert all("pkis/status" not in rule["resources"] for rule in edit)
    assert "users.yaml" in (DEPLOY / "rbac" / "Kustomization").read_text()


def test_policy_reader_is_a_component_for_every_signed_in_user() -> None:
    folder = DEPLOY / "rbac" / "policy-reader"
    component = yaml.safe_load((folder / "Kustomization").read_text())
    assert component["kind"] == "Component"
    objects = documents(folder / component["resources"][0])
    rules = objects["ClusterRole/pkiwarden-policy-reader"]["rules"]
    assert rules == [
        {
            "apiGroups": ["pkiwarden.dev"],
            "resources": ["pkipolicies", "pkiauthorities"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    binding = objects["ClusterRoleBinding/pkiwarden-policy-reader"]
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}
    ]
