"""Every PkiPolicy rule, each with a passing and a failing case."""

from typing import Any

import pytest

from shared.findings import Category, Severity, phrase
from shared.validation.pki_policy import cidr_problem, dns_pattern_problem, validate_policy

E = Severity.ERROR


def policy(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"namespaces": ["app1"], "allowedServiceNames": ["app1"]}
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": "p"},
        "spec": {k: v for k, v in {**base, **spec}.items() if v is not None},
    }


CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    ("minimal", {}, []),
    (
        "everything",
        {
            "namespaceSelector": {
                "matchLabels": {"team": "a"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}],
            },
            "allowedDNSNames": ["*.{serviceName}.example.com", "{serviceName}.{namespace}.svc"],
            "allowedIPRanges": ["10.0.0.0/8", "fd00::/64"],
            "maxDuration": "2160h",
            "allowedKeyAlgorithms": ["ECDSA"],
        },
        [],
    ),
    (
        "selector only",
        {"namespaces": None, "namespaceSelector": {"matchLabels": {"team": "a"}}},
        [],
    ),
    (
        "no selection at all",
        {"namespaces": None},
        [("spec.namespaces", "and so is spec.namespaceSelector")],
    ),
    ("empty namespaces", {"namespaces": []}, [("spec.namespaces", "must not be an empty list")]),
    ("bad namespace", {"namespaces": ["App1"]}, [("spec.namespaces[0]", "upper case")]),
    ("duplicate namespace", {"namespaces": ["a", "a"]}, [("spec.namespaces[1]", "listed twice")]),
    (
        "service names required",
        {"allowedServiceNames": None},
        [("spec.allowedServiceNames", "is required")],
    ),
    (
        "service names empty",
        {"allowedServiceNames": []},
        [("spec.allowedServiceNames", "must not be an empty list")],
    ),
    (
        "bad service name",
        {"allowedServiceNames": ["1app"]},
        [("spec.allowedServiceNames[0]", "must start with a letter")],
    ),
    (
        "duplicate service name",
        {"allowedServiceNames": ["a", "a"]},
        [("spec.allowedServiceNames[1]", "listed twice")],
    ),
    (
        "unknown placeholder",
        {"allowedDNSNames": ["{service}.example.com"]},
        [("spec.allowedDNSNames[0]", 'unknown placeholder "{service}"')],
    ),
    (
        "placeholder typo",
        {"allowedDNSNames": ["{servicename}.example.com"]},
        [("spec.allowedDNSNames[0]", 'did you mean "{serviceName}"?')],
    ),
    (
        "bad wildcard pattern",
        {"allowedDNSNames": ["{serviceName}.*.com"]},
        [("spec.allowedDNSNames[0]", "bad wildcard")],
    ),
    (
        "upper case pattern",
        {"allowedDNSNames": ["{serviceName}.Example.com"]},
        [("spec.allowedDNSNames[0]", "patterns are lower case")],
    ),
    (
        "empty DNS patterns",
        {"allowedDNSNames": []},
        [("spec.allowedDNSNames", "must not be an empty list")],
    ),
    (
        "host bits",
        {"allowedIPRanges": ["10.0.0.1/8"]},
        [("spec.allowedIPRanges[0]", 'did you mean "10.0.0.0/8"?')],
    ),
    (
        "address not range",
        {"allowedIPRanges": ["10.0.0.1"]},
        [("spec.allowedIPRanges[0]", 'write "10.0.0.1/32"')],
    ),
    ("not a cidr", {"allowedIPRanges": ["ten/8"]}, [("spec.allowedIPRanges[0]", "is not a CIDR")]),
    (
        "empty ranges",
        {"allowedIPRanges": []},
        [("spec.allowedIPRanges", "must not be an empty list")],
    ),
    ("maxDuration syntax", {"maxDuration": "90d"}, [("spec.maxDuration", '"2160h"')]),
    (
        "maxDuration below minimum",
        {"maxDuration": "30m"},
        [("spec.maxDuration", "no Pki could use this policy")],
    ),
    (
        "unknown algorithm",
        {"allowedKeyAlgorithms": ["DSA"]},
        [("spec.allowedKeyAlgorithms[0]", "(ECDSA, RSA, Ed25519)")],
    ),
    (
        "duplicate algorithm",
        {"allowedKeyAlgorithms": ["RSA", "RSA"]},
        [("spec.allowedKeyAlgorithms[1]", "listed twice")],
    ),
    (
        "empty algorithms",
        {"allowedKeyAlgorithms": []},
        [("spec.allowedKeyAlgorithms", "must not be an empty list")],
    ),
    (
        "usages granted",
        {"allowedUsages": ["server auth", "code signing"], "minRSASize": 3072},
        [],
    ),
    (
        "unknown usage",
        {"allowedUsages": ["server auht"]},
        [("spec.allowedUsages[0]", 'did you mean "server auth"')],
    ),
    (
        "duplicate usage",
        {"allowedUsages": ["server auth", "server auth"]},
        [("spec.allowedUsages[1]", "listed twice")],
    ),
    ("empty usages", {"allowedUsages": []}, [("spec.allowedUsages", "must not be an empty list")]),
    ("RSA size not offered", {"minRSASize": 1024}, [("spec.minRSASize", "2048, 3072, 4096")]),
    ("RSA size as text", {"minRSASize": "2048"}, [("spec.minRSASize", "integer")]),
    (
        "bad label key",
        {"namespaceSelector": {"matchLabels": {"bad key": "a"}}},
        [('spec.namespaceSelector.matchLabels["bad key"]', "not a valid label key")],
    ),
    (
        "bad label value",
        {"namespaceSelector": {"matchLabels": {"team": "a b"}}},
        [("spec.namespaceSelector.matchLabels.team", "not a valid label value")],
    ),
    (
        "label value not a string",
        {"namespaceSelector": {"matchLabels": {"team": 1}}},
        [("spec.namespaceSelector.matchLabels.team", "must be a string")],
    ),
    (
        "unknown operator",
        {
            "namespaceSelector": {
                "matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]
            }
        },
        [("spec.namespaceSelector.matchExpressions[0].operator", 'did you mean "In"?')],
    ),
    (
        "In without values",
        {"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
        [("spec.namespaceSelector.matchExpressions[0].values", "at least one value")],
    ),
    (
        "Exists with values",
        {
            "namespaceSelector": {
                "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
            }
        },
        [("spec.namespaceSelector.matchExpressions[0].values", "must be empty")],
    ),
    (
        "expression key",
        {"namespaceSelector": {"matchExpressions": [{"key": "-a", "operator": "Exists"}]}},
        [("spec.namespaceSelector.matchExpressions[0].key", "not a valid label key")],
    ),
    (
        "expression value",
        {
            "namespaceSelector": {
                "matchExpressions": [{"key": "a", "operator": "In", "values": ["a b"]}]
            }
        },
        [("spec.namespaceSelector.matchExpressions[0].values[0]", "not a valid label value")],
    ),
    (
        "missing key",
        {"namespaceSelector": {"matchExpressions": [{"operator": "Exists"}]}},
        [("spec.namespaceSelector.matchExpressions[0].key", "is required")],
    ),
    (
        "unknown field",
        {"allowedServiceName": ["x"]},
        [("spec.allowedServiceName", 'did you mean "allowedServiceNames"?')],
    ),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_policy_rules(spec: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    findings = validate_policy(policy(**spec))
    assert [f.path for f in findings] == [path for path, _ in expected]
    for finding, (_, fragment) in zip(findings, expected, strict=True):
        assert finding.severity is E
        assert finding.category is Category.INVALID_SPEC
        assert fragment in phrase(finding)


@pytest.mark.parametrize("body", [None, [], "PkiPolicy", {}, {"spec": 3}])
def test_malformed_policies(body: Any) -> None:
    findings = validate_policy(body)
    assert findings
    assert all(f.severity is E for f in findings)


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        ("{serviceName}.{namespace}.svc", True),
        ("*.example.com", True),
        ("{x}.com", False),
        ("a..b", False),
    ],
)
def test_dns_pattern_problem(pattern: str, ok: bool) -> None:
    assert (dns_pattern_problem(pattern) is None) is ok


@pytest.mark.parametrize(
    ("cidr", "ok"),
    [("10.0.0.0/8", True), ("fd00::/8", True), ("10.0.0.0/33", False), ("::1", False)],
)
def test_cidr_problem(cidr: str, ok: bool) -> None:
    assert (cidr_problem(cidr) is None) is ok


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"namespaces": None, "namespaceSelector": {}},
            "spec.namespaceSelector: {} selects every namespace, kube-system included",
        ),
        (
            {"namespaceSelector": {"matchLabels": {}, "matchExpressions": []}},
            "selects every namespace",
        ),
        ({"allowedIPRanges": ["0.0.0.0/0"]}, '"0.0.0.0/0" allows every IPv4 address'),
        ({"allowedIPRanges": ["::/0"]}, '"::/0" allows every IPv6 address'),
        (
            {"maxDuration": "100000h"},
            '"100000h" is longer than 87600h (ten years), the longest pkiwarden issues for any '
            "Pki; 87600h applies",
        ),
        (
            {"maxDuration": "720h"},
            'spec.maxDuration: "720h" is below the default spec.duration (2160h); a Pki that '
            "leaves spec.duration out gets 720h",
        ),
    ],
)
def test_a_policy_wider_than_meant_gets_a_warning(spec: dict[str, Any], expected: str) -> None:
    (finding,) = validate_policy(policy(**spec))
    assert finding.severity is Severity.WARNING
    assert expected in phrase(finding)


def test_a_narrow_selector_gets_no_warning() -> None:
    spec = {"namespaceSelector": {"matchLabels": {"team": "a"}}, "allowedIPRanges": ["10.0.0.0/8"]}
    assert validate_policy(policy(**spec)) == []
    assert validate_policy(policy(maxDuration="2160h")) == []
