"""A PkiPolicy change that would stop allowing existing Pkis is said at apply time."""

from typing import Any

import pytest

from shared.findings import Severity, phrase
from shared.impact import PolicyContext, no_longer_allowed, policy_change_findings
from webhook.decision import decide
from webhook.review import AdmissionReviewRequest


def policy(name: str = "app-teams", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": name},
        "spec": {"namespaces": ["app1", "app2"], "allowedServiceNames": ["app1", "app2"], **spec},
    }


def pki(namespace: str, name: str, service: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"serviceName": service, **spec},
    }


PKIS = [pki("app1", "a", "app1"), pki("app2", "b", "app2"), pki("other", "c", "app2")]
CLUSTER = PolicyContext(policies=[policy()], pkis=PKIS)


def test_removing_a_service_names_the_pkis_it_stops_allowing() -> None:
    tightened = policy(allowedServiceNames=["app1"])
    assert no_longer_allowed(tightened, CLUSTER) == ["app2/b"]
    (finding,) = policy_change_findings(tightened, CLUSTER)
    assert finding.severity is Severity.WARNING
    assert phrase(finding) == (
        "spec: no longer allows 1 existing Pki, which cannot be issued or renewed until the "
        "policy or the Pki changes: app2/b"
    )


def test_a_long_list_names_a_few_and_counts_the_rest() -> None:
    many = [pki("app2", f"p{i}", "app2") for i in range(10)]
    cluster = PolicyContext(policies=[policy()], pkis=many)
    (finding,) = policy_change_findings(policy(allowedServiceNames=["app1"]), cluster)
    assert finding.problem.endswith(": app2/p0, app2/p1, app2/p2 and 7 more")
    assert "10 existing Pkis" in finding.problem
    (limited,) = policy_change_findings(policy(allowedServiceNames=["app1"]), cluster, limit=4)
    assert limited.problem.endswith("app2/p2 and 1 more (6 more Pkis not checked)")


def test_a_pki_another_policy_still_allows_is_not_named() -> None:
    backup = policy("backup", namespaces=["app2"], allowedServiceNames=["app2"])
    cluster = PolicyContext(policies=[policy(), backup], pkis=PKIS)
    assert no_longer_allowed(policy(allowedServiceNames=["app1"]), cluster) == []


def test_loosening_or_an_unrelated_policy_names_nothing() -> None:
    assert no_longer_allowed(policy(allowedServiceNames=["app1", "app2", "app3"]), CLUSTER) == []
    assert no_longer_allowed(policy("new", namespaces=["x"]), CLUSTER) == []


def test_dropping_a_namespace_or_the_duration_bound_counts() -> None:
    assert no_longer_allowed(policy(namespaces=["app1"]), CLUSTER) == ["app2/b"]
    # A Pki without spec.duration gets the policy's bound; one asking for more is refused.
    longer = pki("app1", "d", "app1", duration="2160h")
    cluster = PolicyContext(policies=[policy()], pkis=[*PKIS, longer])
    assert no_longer_allowed(policy(maxDuration="720h"), cluster) == ["app1/d"]


def _review(obj: dict[str, Any]) -> AdmissionReviewRequest:
    review: Any = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "kind": {"group": "pkiwarden.dev", "version": "v1alpha1", "kind": "PkiPolicy"},
            "resource": {
                "group": "pkiwarden.dev",
                "version": "v1alpha1",
                "resource": "pkipolicies",
            },
            "operation": "UPDATE",
            "name": "app-teams",
            "object": obj,
            "oldObject": policy(),
            "dryRun": False,
        },
    }
    return review


def test_the_webhook_allows_the_change_with_the_warning() -> None:
    response = decide(_review(policy(allowedServiceNames=["app1"])), None, CLUSTER)["response"]
    assert response["allowed"] is True
    assert response.get("warnings") == [
        "spec: no longer allows 1 existing Pki, which cannot be issued or renewed until the "
        "policy or the Pki changes: app2/b"
    ]
    unchanged = decide(_review(policy()), None, CLUSTER)["response"]
    assert "warnings" not in unchanged


CLUSTER_NAMESPACES = {"app1": {}, "app2": {}, "payments": {}}


@pytest.mark.parametrize(
    ("namespaces", "known", "expected"),
    [
        (
            ["app1", "paymnets"],
            True,
            [
                'spec.namespaces[1]: "paymnets" does not exist (yet), so the policy selects '
                'nothing there; did you mean "payments"?'
            ],
        ),
        (["app1", "zzz-later"], True, ['spec.namespaces[1]: "zzz-later" does not exist']),
        (["app1", "app2"], True, []),
        # Namespaces not known (lint, a cache not synced): nothing is said.
        (["paymnets"], False, []),
    ],
)
def test_a_namespace_that_does_not_exist_is_warned(
    namespaces: list[str], known: bool, expected: list[str]
) -> None:
    cluster = PolicyContext(
        policies=[], pkis=[], namespace_labels=CLUSTER_NAMESPACES, namespaces_known=known
    )
    findings = policy_change_findings(policy(namespaces=namespaces), cluster)
    assert all(f.severity is Severity.WARNING for f in findings)
    assert len(findings) == len(expected)
    for finding, fragment in zip(findings, expected, strict=True):
        assert fragment in phrase(finding)
