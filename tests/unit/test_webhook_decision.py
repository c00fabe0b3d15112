"""The verdict on an AdmissionReview, case by case: input review -> what the API server gets."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.findings import Category, Finding, Severity
from shared.text import clip, one_line
from shared.validation.pki import Context
from webhook.decision import (
    MAX_WARNING_CHARS,
    MAX_WARNINGS_TOTAL_CHARS,
    decide,
    warning_lines,
)
from webhook.review import AdmissionReviewRequest

POLICY: dict[str, Any] = {
    "apiVersion": "pkiwarden.dev/v1alpha1",
    "kind": "PkiPolicy",
    "metadata": {"name": "app-teams"},
    "spec": {"namespaces": ["app1", "app2"], "allowedServiceNames": ["app1", "app2"]},
}
CONTEXT = Context(policies=[POLICY], namespace_labels={}, other_pkis=[], secrets={})
TYPO = (
    'spec.serviceName: "appp1" is not allowed in namespace "app1"'
    ' (allowed by PkiPolicy "app-teams": app1, app2); did you mean "app1"?'
)


def pki(name: str = "app1-pki", namespace: str = "app1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def policy(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": "p"},
        "spec": spec,
    }


def authority(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiAuthority",
        "metadata": {"name": "default"},
        "spec": {"secretName": "pkiwarden-ca", **spec},
    }


def review(
    obj: Any,
    *,
    operation: str = "CREATE",
    old: Any = None,
    kind: str = "Pki",
    group: str = "pkiwarden.dev",
    dry_run: bool = False,
) -> AdmissionReviewRequest:
    metadata = obj.get("metadata", {}) if isinstance(obj, dict) else {}
    request: dict[str, Any] = {
        "uid": "0f6e1c3a-uid",
        "kind": {"group": group, "version": "v1alpha1", "kind": kind},
        "operation": operation,
        "name": metadata.get("name", ""),
        "namespace": metadata.get("namespace", ""),
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}  # type: ignore[typeddict-item]


@dataclass(frozen=True)
class Case:
    name: str
    review: AdmissionReviewRequest
    allowed: bool
    message: str | None = None  # exact denial message
    message_has: tuple[str, ...] = ()
    warnings_have: tuple[str, ...] = ()
    no_warnings: bool = False
    context: Context = field(default=CONTEXT)


RENEW_SOON = pki(serviceName="app1", renewBefore="1h")
TAKEN = pki("second", serviceName="app1", secretName="shared-tls")
CASES = [
    Case("valid Pki", review(pki(serviceName="app1")), allowed=True, no_warnings=True),
    Case("typo is denied with the suggestion", review(pki(serviceName="appp1")), False, TYPO),
    Case(
        "dry run gets the same answer", review(pki(serviceName="appp1"), dry_run=True), False, TYPO
    ),
    Case(
        "three errors in one message",
        review(pki(serviceName="appp1", dnsNames=["Bad_Name"], duration="10m")),
        allowed=False,
        message_has=(TYPO + "; spec.dnsNames[0]: ", '; spec.duration: "10m" is shorter'),
    ),
    Case(
        "soft finding: allowed with a warning",
        review(RENEW_SOON),
        allowed=True,
        warnings_have=("spec.renewBefore:",),
    ),
    Case(
        "namespace no policy selects",
        review(pki(namespace="elsewhere", serviceName="app1")),
        allowed=False,
        message_has=('"elsewhere" is not selected by any PkiPolicy',),
    ),
    Case(
        "secretName taken by another Pki is denied naming it",
        review(TAKEN),
        allowed=False,
        message_has=('spec.secretName: "shared-tls" is already the Secret of Pki "first"',),
        context=Context(
            policies=[POLICY],
            namespace_labels={},
            other_pkis=[pki("first", serviceName="app1", secretName="shared-tls")],
            secrets={},
        ),
    ),
    Case(
        "denied and warned at once",
        review(pki(serviceName="appp1", renewBefore="1h")),
        allowed=False,
        message=TYPO,
        warnings_have=("spec.renewBefore:",),
    ),
    Case(
        "UPDATE with unchanged spec: allowed, errors become warnings",
        review(
            {
                **pki(serviceName="appp1"),
                "metadata": {"name": "app1-pki", "namespace": "app1", "finalizers": ["x"]},
            },
            operation="UPDATE",
            old=pki(serviceName="appp1"),
        ),
        allowed=True,
        warnings_have=(TYPO,),
    ),
    Case(
        "UPDATE that changes spec is validated in full",
        review(pki(serviceName="appp1"), operation="UPDATE", old=pki(serviceName="app1")),
        allowed=False,
        message=TYPO,
    ),
    Case("DELETE is let through", review(pki(serviceName="appp1"), operation="DELETE"), True),
    Case("CONNECT is let through", review(pki(serviceName="appp1"), operation="CONNECT"), True),
    Case("another kind", review({"spec": {}}, kind="ConfigMap", group=""), True, no_warnings=True),
    Case("same kind, other group", review(pki(serviceName="x"), group="example.com"), True),
    Case(
        "PkiPolicy with a bad CIDR",
        review(
            policy(namespaces=["a"], allowedServiceNames=["x"], allowedIPRanges=["10.0.0.0/33"]),
            kind="PkiPolicy",
        ),
        allowed=False,
        message_has=('spec.allowedIPRanges[0]: "10.0.0.0/33" is not a CIDR',),
    ),
    Case(
        "valid PkiPolicy",
        review(policy(namespaces=["a"], allowedServiceNames=["x"]), kind="PkiPolicy"),
        allowed=True,
    ),
    Case(
        "PkiAuthority: an edited spec.generate applies at the next rotation",
        review(
            authority(generate={"commonName": "Acme Platform CA"}),
            operation="UPDATE",
            old=authority(generate={}),
            kind="PkiAuthority",
        ),
        allowed=True,
        warnings_have=(
            "spec.generate: is used for the next CA only, made at the next rotation (its renewal"
            " time, or pkiwarden ca rotate)",
        ),
    ),
    Case(
        "PkiAuthority: other edits or a first generate say nothing",
        review(
            authority(generate={}, rotation={"reissueRate": 5}),
            operation="UPDATE",
            old=authority(),
            kind="PkiAuthority",
        ),
        allowed=True,
        no_warnings=True,
    ),
    Case(
        "PkiAuthority: created with generate, no warning",
        review(authority(generate={"commonName": "x"}), kind="PkiAuthority"),
        allowed=True,
        no_warnings=True,
    ),
    Case(
        "a namespace not onboarded: allowed, with how to onboard it",
        review(pki(serviceName="app1")),
        allowed=True,
        warnings_have=(
            'metadata.namespace: "app1" is not onboarded; a cluster admin runs:'
            " kubectl apply -n app1 -f deploy/tenants/",
        ),
        context=Context(policies=[POLICY], namespace_labels={}, onboarded=False),
    ),
    Case("object is not a mapping", review(["not", "a", "pki"]), False, message_has=("object:",)),
    Case("object is missing", review(None), allowed=False),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_decision(case: Case) -> None:
    given = copy.deepcopy(case.review)
    answer = decide(case.review, case.context)
    assert case.review == given, "the decision must not modify the review"
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "0f6e1c3a-uid"
    assert response["allowed"] is case.allowed
    if case.allowed:
        assert "status" not in response
    else:
        status = response["status"]
        assert (status["code"], status["reason"]) == (403, "Forbidden")
        assert "\n" not in status["message"]
        if case.message is not None:
            assert status["message"] == case.message
        for part in case.message_has:
            assert part in status["message"]
    warnings = response.get("warnings", [])
    if case.no_warnings:
        assert warnings == []
    for part in case.warnings_have:
        assert any(part in line for line in warnings), warnings
    for line in warnings:
        assert clip(one_line(line), MAX_WARNING_CHARS) == line


def _finding(problem: str, value: object = None) -> Finding:
    return Finding(Severity.WARNING, Category.ADVICE, "spec.commonName", problem, value)


def test_warnings_never_hold_control_characters() -> None:
    lines = warning_lines([_finding("first\nsecond\tthird\x7f\u2028end", "a\nb")])
    assert lines == ['spec.commonName: "a\\nb" first second third  end']


def test_a_long_warning_is_cut_to_what_the_api_server_keeps() -> None:
    (line,) = warning_lines([_finding("x" * 1000)])
    assert len(line) == MAX_WARNING_CHARS
    assert line.endswith("...")


def test_many_warnings_stay_within_the_total_and_say_how_many_are_left_out() -> None:
    lines = warning_lines([_finding("y" * 200)] * 100)
    assert sum(len(line) for line in lines) <= MAX_WARNINGS_TOTAL_CHARS
    assert lines[-1].endswith("more warnings not shown; `pkiwarden lint` lists them all")
    shown = len(lines) - 1
    assert lines[-1].startswith(f"{100 - shown} more warnings")
