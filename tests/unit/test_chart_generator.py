"""The chart generator's pure parts: placeholders become Helm expressions, defaults deploy/'s."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
import yaml

from pkiwarden.release import chart, values
from pkiwarden.release.templates import Block, Extra, Marked, Optional, Scalar, wrap

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "pkiwarden-webhook", "namespace": "pkiwarden-system"},
    "spec": {
        "replicas": 2,
        "template": {
            "metadata": {"labels": {"app": "x"}},
            "spec": {
                "containers": [
                    {"name": "webhook", "image": "pkiwarden:1.2.3", "resources": {"a": 1}}
                ],
                "topologySpreadConstraints": [{"maxSkew": 1}],
            },
        },
    },
}
REGISTRATION: dict[str, Any] = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": "pkiwarden"},
    "webhooks": [
        {
            "name": "pkis.pkiwarden.dev",
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
            "namespaceSelector": {
                "matchExpressions": [
                    {"key": "k", "operator": "NotIn", "values": ["pkiwarden-system"]}
                ]
            },
        }
    ],
}


def test_each_slot_kind_renders_its_expression() -> None:
    marked = Marked({"a": {"b": 1, "c": {"x": 1}, "d": ["keep"]}})
    marked.set(("a", "b"), Scalar(".Values.b"))
    marked.set(("a", "c"), Block(".Values.c"))
    marked.optional(("a",), Optional("e", ".Values.e"))
    marked.extend(("a", "d"), Extra(".Values.d"))
    assert marked.render() == (
        "a:\n"
        "  b: {{ .Values.b }}\n"
        "  c:\n"
        "    {{- toYaml .Values.c | nindent 4 }}\n"
        "  d:\n"
        "  - keep\n"
        "{{- range .Values.d }}\n"
        "  - {{ . | quote }}\n"
        "{{- end }}\n"
        "{{- with .Values.e }}\n"
        "  e:\n"
        "    {{- toYaml . | nindent 4 }}\n"
        "{{- end }}\n"
    )


def test_a_path_that_moved_in_deploy_fails_the_generator_naming_it() -> None:
    item = {"kind": "Deployment", "metadata": {"name": "x"}, "spec": {}}
    with pytest.raises(LookupError, match=r"spec.replicas is not in Deployment x"):
        Marked(item).set(("spec", "replicas"), Scalar(".Values.r"))
    with pytest.raises(LookupError, match=r"spec.template is not in Deployment x"):
        Marked(item).set(("spec", "template", "spec"), Scalar(".Values.r"))


def test_an_optional_key_deploy_already_sets_is_refused() -> None:
    with pytest.raises(ValueError, match="already set in deploy/"):
        Marked({"spec": {"nodeSelector": {}}}).optional(("spec",), Optional("nodeSelector", "x"))


def test_wrap_puts_an_object_behind_a_condition() -> None:
    assert wrap(".Values.on", "a: 1\n") == "{{- if .Values.on }}\na: 1\n{{- end }}\n"
    assert wrap(".Values.on", "a: 1\n", "a: 2\n") == (
        "{{- if .Values.on }}\na: 1\n{{- else }}\na: 2\n{{- end }}\n"
    )


ROLE: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "pkiwarden-issuer", "namespace": "pkiwarden-system"},
    "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["pkiwarden-ca"],
            "verbs": ["get", "list", "watch", "update"],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["pkiwarden-ca-next"],
            "verbs": ["get"],
        },
    ],
}


def test_deployment_template_names_every_value() -> None:
    text = chart.template(DEPLOYMENT, "pkiwarden:1.2.3")
    for expression in (
        "replicas: {{ .Values.webhook.replicas }}",
        'image: {{ include "pkiwarden.image" . }}',
        "{{- toYaml .Values.webhook.resources | nindent 10 }}",
        "{{- with .Values.webhook.podAnnotations }}",
        "{{- with .Values.webhook.priorityClassName }}",
        "{{- with .Values.webhook.nodeSelector }}",
        "{{- with .Values.webhook.tolerations }}",
        "{{- with .Values.webhook.affinity }}",
        "{{- with .Values.webhook.topologySpreadConstraints }}",
    ):
        assert expression in text
    assert "maxSkew" not in text  # deploy/'s spread is the value's default, not fixed


def test_registration_template_takes_failure_policy_timeout_and_exclusions() -> None:
    text = chart.template(REGISTRATION, "pkiwarden:1.2.3")
    assert "failurePolicy: {{ .Values.webhook.failurePolicy }}" in text
    assert "timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}" in text
    assert "- pkiwarden-system\n{{- range .Values.webhook.excludeNamespaces }}" in text


def test_values_default_to_what_deploy_states() -> None:
    issuer = {**DEPLOYMENT, "metadata": {"name": "pkiwarden-issuer"}}
    defaults = values.values([DEPLOYMENT, issuer, REGISTRATION, ROLE])
    assert defaults["image"] == {"repository": "pkiwarden", "tag": "1.2.3", "digest": ""}
    assert defaults["webhook"]["replicas"] == 2
    assert defaults["webhook"]["resources"] == {"a": 1}
    assert defaults["webhook"]["topologySpreadConstraints"] == [{"maxSkew": 1}]
    assert defaults["webhook"]["failurePolicy"] == "Fail"
    assert defaults["webhook"]["timeoutSeconds"] == 5
    assert defaults["tenants"] == [] and defaults["monitoring"] == {"enabled": False}
    assert defaults["issuer"]["caSecretNames"] == ["pkiwarden-ca"]
    assert defaults["issuer"]["nextCASecretNames"] == ["pkiwarden-ca-next"]
    jsonschema.validate(defaults, values.schema())


def test_the_issuer_role_takes_its_ca_secret_names_from_the_values() -> None:
    """One more PkiAuthority is one more name in a value, never a blanket Secret grant."""
    text = chart.template(ROLE, "pkiwarden:1.2.3")
    assert "  resourceNames:\n    {{- toYaml .Values.issuer.caSecretNames | nindent 4 }}" in text
    assert "{{- toYaml .Values.issuer.nextCASecretNames | nindent 4 }}" in text
    assert "pkiwarden-ca" not in text  # the names are the values' defaults, not fixed
    moved = {**ROLE, "rules": ROLE["rules"][:2]}
    with pytest.raises(LookupError, match="the next CAs"):
        chart.template(moved, "pkiwarden:1.2.3")


@pytest.mark.parametrize(
    ("path", "bad", "named"),
    [
        (("webhook", "replicas"), -1, "-1 is less than the minimum of 0"),
        (("issuer", "replicas"), "two", "'two' is not of type 'integer'"),
        (("webhook", "failurePolicy"), "Sometimes", "'Sometimes' is not one of ['Fail', 'Ignore']"),
        (("webhook", "timeoutSeconds"), 31, "31 is greater than the maximum of 30"),
        (("tenants",), ["App1"], "'App1' does not match"),
        (("image", "digest"), "latest", "'latest' does not match"),
        # An empty resourceNames would grant every Secret in the namespace.
        (("issuer", "caSecretNames"), [], "should be non-empty"),
        (("issuer", "nextCASecretNames"), [], "should be non-empty"),
        (("issuer", "caSecretNames"), ["Team_CA"], "'Team_CA' does not match"),
    ],
)
def test_schema_refuses_bad_values(path: tuple[str, ...], bad: Any, named: str) -> None:
    issuer = {**DEPLOYMENT, "metadata": {"name": "pkiwarden-issuer"}}
    defaults = values.values([DEPLOYMENT, issuer, REGISTRATION, ROLE])
    node = defaults
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError, match=named.replace("[", r"\[")):
        jsonschema.validate(defaults, values.schema())


def test_schema_refuses_an_unknown_value() -> None:
    issuer = {**DEPLOYMENT, "metadata": {"name": "pkiwarden-issuer"}}
    defaults = values.values([DEPLOYMENT, issuer, REGISTRATION, ROLE])
    defaults["webhook"]["replica"] = 3
    with pytest.raises(jsonschema.ValidationError, match="'replica' was unexpected"):
        jsonschema.validate(defaults, values.schema())


def test_every_value_is_in_the_chart_readme() -> None:
    issuer = {**DEPLOYMENT, "metadata": {"name": "pkiwarden-issuer"}}
    defaults = values.values([DEPLOYMENT, issuer, REGISTRATION, ROLE])
    text = chart.readme.render("1.2.3", defaults)
    for value in values.TABLE:
        assert f"| `{value.path}` |" in text
    assert "helm install pkiwarden pkiwarden-1.2.3.tgz" in text


@pytest.mark.parametrize(
    ("reference", "split"),
    [
        ("pkiwarden:0.2.0", ("pkiwarden", "0.2.0", "")),
        ("registry:5000/team/pkiwarden", ("registry:5000/team/pkiwarden", "", "")),
        ("r:5000/p:1@sha256:ab", ("r:5000/p", "1", "sha256:ab")),
    ],
)
def test_split_image(reference: str, split: tuple[str, str, str]) -> None:
    assert values.split_image(reference) == split


def test_tenant_bindings_repeat_per_namespace() -> None:
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "pkiwarden-issuer"},
    }
    text = chart._tenant_template([binding])
    assert text.startswith("{{- range .Values.tenants }}\n---\n")
    assert yaml.safe_load(
        text.split("---\n", 1)[1].replace("{{ . | quote }}", "app1").split("{{-")[0]
    )["metadata"] == {"name": "pkiwarden-issuer", "namespace": "app1"}


def test_braces_of_the_objects_own_templates_reach_the_cluster_as_written() -> None:
    text = Marked({"description": "{{ $labels.namespace }}/{{ $labels.name }}"}).render()
    assert text == (
        'description: \'{{ "{{" }} $labels.namespace {{ "}}" }}/{{ "{{" }} $labels.name'
        ' {{ "}}" }}\'\n'
    )


def test_two_objects_are_never_written_to_one_file() -> None:
    out: dict[str, str] = {}
    chart._add(out, "templates/a.yaml", "x")
    with pytest.raises(ValueError, match=r"two objects would be written to templates/a.yaml"):
        chart._add(out, "templates/a.yaml", "y")
    role = {"kind": "Role", "metadata": {"name": "r", "namespace": "app1"}}
    assert chart._file_name(role) == "templates/role-r-app1.yaml"


def test_every_container_of_the_pkiwarden_image_takes_the_images_value() -> None:
    job = {
        "kind": "Job",
        "metadata": {"name": "other"},
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [{"name": "a", "image": "pkiwarden:1.2.3"}],
                    "containers": [
                        {"name": "b", "image": "pkiwarden:1.2.3"},
                        {"name": "c", "image": "busybox:1"},
                    ],
                }
            }
        },
    }
    text = chart.template(job, "pkiwarden:1.2.3")
    assert text.count('image: {{ include "pkiwarden.image" . }}') == 2
    assert "image: busybox:1" in text


ISSUER_DEPLOYMENT: dict[str, Any] = copy.deepcopy(
    {**DEPLOYMENT, "metadata": {"name": "pkiwarden-issuer", "namespace": "pkiwarden-system"}}
)
ISSUER_DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]["args"] = ["issuer", "run"]
SHARDS_ROLE: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "pkiwarden-issuer-shards", "namespace": "pkiwarden-system"},
    "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]}],
}


def _by_identity(*items: dict[str, Any]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    return {chart.key(item): item for item in items}


def test_the_issuer_takes_shards_from_the_values_and_passes_none_for_one() -> None:
    text = chart.template(ISSUER_DEPLOYMENT, "pkiwarden:1.2.3")
    assert (
        '{{- range ternary (list (printf "--shards=%d" (int .Values.issuer.shards))) (list)'
        " (gt (int .Values.issuer.shards) 1) }}"
    ) in text
    assert "replicas: {{ .Values.issuer.replicas }}" in text
    assert (
        '{{- with ternary (dict "type" "Recreate") (dict) (gt (int .Values.issuer.shards) 1) }}\n'
        "  strategy:\n"
    ) in text


def test_what_only_the_sharding_component_adds_renders_only_when_sharded() -> None:
    sharded_deployment = copy.deepcopy(ISSUER_DEPLOYMENT)
    sharded_deployment["spec"]["replicas"] = 3
    sharded_deployment["spec"]["template"]["spec"]["containers"][0]["args"].append("--shards=3")
    out = chart.sharding_templates(
        _by_identity(ISSUER_DEPLOYMENT, REGISTRATION),
        _by_identity(sharded_deployment, REGISTRATION, SHARDS_ROLE),
        "pkiwarden:1.2.3",
    )
    assert list(out) == ["templates/role-pkiwarden-issuer-shards.yaml"]
    text = out["templates/role-pkiwarden-issuer-shards.yaml"]
    assert text.startswith("{{- if gt (int .Values.issuer.shards) 1 }}\n")
    assert text.endswith("{{- end }}\n")
    assert yaml.safe_load(text.split("\n", 1)[1].rsplit("{{- end }}", 1)[0]) == SHARDS_ROLE


def test_a_sharding_change_the_values_cannot_express_stops_the_generator() -> None:
    changed = copy.deepcopy(REGISTRATION)
    changed["webhooks"][0]["timeoutSeconds"] = 9
    with pytest.raises(ValueError, match=r"deploy/sharding changes .*pkiwarden.*give it a value"):
        chart.sharding_templates(
            _by_identity(REGISTRATION), _by_identity(changed), "pkiwarden:1.2.3"
        )


def test_one_shard_by_default_and_never_fewer() -> None:
    defaults = values.values([DEPLOYMENT, ISSUER_DEPLOYMENT, REGISTRATION, ROLE])
    assert defaults["issuer"]["shards"] == 1
    for bad, named in ((0, "0 is less than the minimum of 1"), ("3", "'3' is not of type")):
        defaults["issuer"]["shards"] = bad
        with pytest.raises(jsonschema.ValidationError, match=named):
            jsonschema.validate(defaults, values.schema())
