"""A namespace's trust ConfigMap: the union of the authorities it may use, and one key each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from issuer.controllers.authorities.decisions.namespace_trust import (
    allowed_authorities,
    namespace_trust,
)
from issuer.controllers.authorities.decisions.trust import bundle_certificates, union_bundle
from issuer.controllers.authorities.effects import configmaps
from issuer.runtime import issuance

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def same(authority: str) -> str:
    """Names as they are: the issuer's own authority is ``default``."""
    return authority


def _pem(name: str) -> str:
    certificate, _ = issuance.self_signed_ca(name, NOW, timedelta(days=30))
    return issuance.certificate_to_pem(certificate).decode()


DEFAULT, PLATFORM, UNUSED = _pem("default CA"), _pem("platform CA"), _pem("unused CA")
BUNDLES = {"default": DEFAULT, "platform": PLATFORM, "unused": UNUSED}


def _policy(name: str, namespaces: list[str], authorities: list[str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"namespaces": namespaces, "allowedServiceNames": ["web"]}
    if authorities is not None:
        spec["allowedAuthorities"] = authorities
    return {"metadata": {"name": name}, "spec": spec}


POLICIES = [
    _policy("apps", ["app1"], None),  # the default: the issuer's default authority
    _policy("platform", ["app2"], ["platform"]),
    _policy("both", ["app3"], ["default", "platform"]),
    _policy("ghost", ["app4"], ["nowhere"]),  # an authority that does not exist
]
NAMESPACES = [{"metadata": {"name": n}} for n in ("app1", "app2", "app3", "app4", "other")]


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [
        ("app1", {"default"}),
        ("app2", {"platform"}),
        ("app3", {"default", "platform"}),
        ("app4", {"nowhere"}),
        ("other", set()),
    ],
)
def test_allowed_authorities(namespace: str, expected: set[str]) -> None:
    assert allowed_authorities(POLICIES, namespace, {}, same) == expected


def test_the_default_name_stands_for_the_issuers_own_authority() -> None:
    own = {"default": "e2e"}.get
    assert allowed_authorities(POLICIES, "app1", {}, lambda a: own(a, a)) == {"e2e"}
    assert allowed_authorities(POLICIES, "app3", {}, lambda a: own(a, a)) == {"e2e", "platform"}


def test_each_namespace_holds_the_union_and_one_key_per_authority_it_may_use() -> None:
    wanted = namespace_trust(POLICIES, NAMESPACES, BUNDLES, same)
    assert set(wanted) == {"app1", "app2", "app3", "app4"}  # "other": no policy selects it
    assert wanted["app1"] == {"ca.crt": DEFAULT, "default.crt": DEFAULT}
    assert wanted["app2"] == {"ca.crt": PLATFORM, "platform.crt": PLATFORM}
    assert set(wanted["app3"]) == {"ca.crt", "default.crt", "platform.crt"}
    union = bundle_certificates(wanted["app3"]["ca.crt"].encode())
    assert {c.subject.rfc4514_string() for c in union} == {"CN=default CA", "CN=platform CA"}
    assert wanted["app4"] == {"ca.crt": ""}  # still mounted; nothing to trust yet
    assert all("unused.crt" not in data for data in wanted.values())


def test_the_union_holds_a_shared_root_once() -> None:
    assert union_bundle([DEFAULT, DEFAULT + PLATFORM]) == union_bundle([PLATFORM, DEFAULT])
    assert len(bundle_certificates(union_bundle([DEFAULT, DEFAULT]).encode())) == 1


def test_a_rotation_of_one_authority_changes_only_the_namespaces_that_use_it() -> None:
    before = namespace_trust(POLICIES, NAMESPACES, BUNDLES, same)
    existing = [
        {
            "metadata": {
                "name": configmaps.TRUST_CONFIGMAP,
                "namespace": ns,
                "labels": {"app.kubernetes.io/managed-by": "pkiwarden"},
                "resourceVersion": "1",
            },
            "data": data,
        }
        for ns, data in before.items()
    ]
    rotated = {**BUNDLES, "platform": PLATFORM + _pem("platform CA 2")}
    after = namespace_trust(POLICIES, NAMESPACES, rotated, same)
    changes = configmaps.trust_changes(after, existing)
    assert [(c.verb.value, c.namespace) for c in changes] == [
        ("update", "app2"),
        ("update", "app3"),
    ]
