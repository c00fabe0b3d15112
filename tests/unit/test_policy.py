from typing import Any

import pytest

from shared.policy import (
    compile_policy,
    compiled,
    dns_name_allowed,
    expand,
    pattern_matches,
    selecting,
)


def policy(name: str = "p", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"allowedServiceNames": ["web"], **spec}}


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("web.shop.svc", "web.shop.svc", True),
        ("web.shop.svc", "api.shop.svc", False),
        ("*.web.shop.svc", "a.web.shop.svc", True),
        ("*.web.shop.svc", "*.web.shop.svc", True),
        ("*.web.shop.svc", "a.b.web.shop.svc", False),
        ("*.web.shop.svc", "web.shop.svc", False),
        ("*.web.shop.svc", ".web.shop.svc", False),
    ],
)
def test_pattern_matches(pattern: str, name: str, matches: bool) -> None:
    assert pattern_matches(pattern, name) is matches


def test_expand_and_allow() -> None:
    patterns = [
        expand(p, "web", "shop") for p in ["{serviceName}.{namespace}.svc", "*.example.com"]
    ]
    assert patterns == ["web.shop.svc", "*.example.com"]
    assert dns_name_allowed("x.example.com", patterns)
    assert not dns_name_allowed("web.other.svc", patterns)


@pytest.mark.parametrize(
    ("spec", "labels", "selected"),
    [
        ({"namespaces": ["shop"]}, None, True),
        ({"namespaces": ["other"]}, None, False),
        ({"namespaceSelector": {"matchLabels": {"team": "a"}}}, {"team": "a"}, True),
        ({"namespaceSelector": {"matchLabels": {"team": "a"}}}, {"team": "b"}, False),
        ({"namespaceSelector": {"matchLabels": {"team": "a"}}}, None, False),
        ({"namespaceSelector": {}}, None, True),
        (
            _in := {
                "namespaceSelector": {
                    "matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]
                }
            },
            {"team": "b"},
            True,
        ),
        (_in, {"team": "c"}, False),
        (
            _not_in := {
                "namespaceSelector": {
                    "matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]
                }
            },
            {},
            True,
        ),
        (_not_in, {"team": "a"}, False),
        (
            _exists := {
                "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]}
            },
            {"team": ""},
            True,
        ),
        (_exists, {}, False),
        (
            _absent := {
                "namespaceSelector": {
                    "matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]
                }
            },
            {},
            True,
        ),
        (_absent, {"team": "a"}, False),
        (
            {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Near"}]}},
            {"team": "a"},
            False,
        ),
        (
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}},
            None,
            True,
        ),
        (
            {"namespaces": ["other"], "namespaceSelector": {"matchLabels": {"team": "a"}}},
            {"team": "a"},
            True,
        ),
    ],
)
def test_namespace_selection(
    spec: dict[str, Any], labels: dict[str, str] | None, selected: bool
) -> None:
    assert bool(selecting([policy(**spec)], "shop", labels)) is selected


def test_selecting_sorts_by_name() -> None:
    chosen = selecting(
        [policy("b", namespaces=["shop"]), policy("a", namespaces=["shop"])], "shop", None
    )
    assert [p.name for p in chosen] == ["a", "b"]


def test_compile_is_lenient_and_omissions_mean_the_design_defaults() -> None:
    result = compile_policy(policy(allowedIPRanges=["10.0.0.0/8", "nope"], maxDuration="1x"))
    assert [str(n) for n in result.ip_ranges] == ["10.0.0.0/8"]
    assert result.max_duration is not None and result.max_duration.total_seconds() == 0
    plain = compile_policy(policy())
    assert plain.ip_ranges == ()
    assert plain.max_duration is None
    assert plain.key_algorithms == ("ECDSA", "RSA", "Ed25519")
    assert plain.dns_patterns == (
        "{serviceName}.{namespace}.svc",
        "{serviceName}.{namespace}.svc.cluster.local",
    )
    assert compile_policy("junk").service_names == ()


def test_compiled_is_cached_by_identity() -> None:
    first = policy(namespaces=["shop"])
    assert compiled(first) is compiled(first)
    assert compiled(policy(namespaces=["shop"])) is not compiled(first)
