from typing import Any

import pytest

from shared.defaults import apply_defaults


def pki(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web-pki", "namespace": "shop"}, "spec": spec}


def test_all_defaults_of_the_design() -> None:
    assert apply_defaults(pki(serviceName="web"))["spec"] == {
        "serviceName": "web",
        "secretName": "web-pki-tls",
        "dnsNames": ["web.shop.svc", "web.shop.svc.cluster.local"],
        "commonName": "web.shop.svc",
        "duration": "2160h",
        "renewBefore": "720h",
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "usages": ["server auth", "digital signature"],
        "authority": "default",
    }


@pytest.mark.parametrize(
    ("spec", "field", "expected"),
    [
        (
            {"privateKey": {"algorithm": "RSA"}},
            "privateKey",
            {"algorithm": "RSA", "size": 2048, "rotationPolicy": "Always"},
        ),
        (
            {"privateKey": {"algorithm": "Ed25519"}},
            "privateKey",
            {"algorithm": "Ed25519", "rotationPolicy": "Always"},
        ),
        ({"duration": "90m"}, "renewBefore", "30m"),
        ({"duration": "1h"}, "renewBefore", "20m"),
        ({"duration": "90d"}, "renewBefore", None),
        ({"dnsNames": ["a.example.com"]}, "commonName", "a.example.com"),
        ({"dnsNames": []}, "commonName", None),
        ({"secretName": "mine"}, "secretName", "mine"),
        ({"usages": ["client auth"]}, "usages", ["client auth"]),
        # Key encipherment is RSA key exchange; an ECDSA or Ed25519 key cannot do it.
        ({"privateKey": {"algorithm": "ECDSA"}}, "usages", ["server auth", "digital signature"]),
        ({"privateKey": {"algorithm": "Ed25519"}}, "usages", ["server auth", "digital signature"]),
        (
            {"privateKey": {"algorithm": "RSA"}},
            "usages",
            ["server auth", "digital signature", "key encipherment"],
        ),
        ({"privateKey": {"algorithm": "rsa"}}, "usages", None),
    ],
)
def test_defaults_follow_other_fields(spec: dict[str, Any], field: str, expected: Any) -> None:
    result = apply_defaults(pki(serviceName="web", **spec))["spec"]
    assert result.get(field) == expected


def test_namespace_argument_wins_and_input_is_untouched() -> None:
    original = pki(serviceName="web")
    result = apply_defaults(original, namespace="other")
    assert result["spec"]["dnsNames"][0] == "web.other.svc"
    assert original["spec"] == {"serviceName": "web"}


@pytest.mark.parametrize(
    "body", [{}, {"spec": "nope"}, {"spec": {"serviceName": 5}, "metadata": []}]
)
def test_malformed_objects_are_returned_without_error(body: dict[str, Any]) -> None:
    result = apply_defaults(body)
    assert result.get("spec") == body.get("spec") or isinstance(result["spec"], dict)


def test_no_namespace_leaves_dns_names_unset() -> None:
    result = apply_defaults({"metadata": {"name": "x"}, "spec": {"serviceName": "web"}})
    assert "dnsNames" not in result["spec"]
    assert result["spec"]["secretName"] == "x-tls"
