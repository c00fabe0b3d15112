"""Validation never raises: arbitrary JSON anywhere, arbitrary strings in every field."""

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.defaults import apply_defaults
from shared.findings import Finding, phrase
from shared.schema import PKI_SCHEMA, POLICY_SPEC
from shared.validation.common import message_for_denial
from shared.validation.pki import Context, SecretInfo, validate_pki
from shared.validation.pki_policy import validate_policy

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
PKI_FIELDS = list(PKI_SCHEMA["properties"]["spec"]["properties"])
POLICY_FIELDS = list(POLICY_SPEC["properties"])


def field_values(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    value = st.text() | st.lists(st.text(), max_size=3) | json_values
    return st.dictionaries(st.sampled_from(names), value, max_size=len(names))


def pkis() -> st.SearchStrategy[Any]:
    spec = field_values(PKI_FIELDS) | st.fixed_dictionaries(
        {
            "serviceName": st.text(),
            "privateKey": st.dictionaries(
                st.sampled_from(["algorithm", "size", "rotationPolicy"]), json_values
            ),
        }
    )
    named = st.fixed_dictionaries(
        {"metadata": st.fixed_dictionaries({"name": st.text()}), "spec": spec}
    )
    return named | json_values


def policies() -> st.SearchStrategy[Any]:
    spec = field_values(POLICY_FIELDS) | st.fixed_dictionaries(
        {
            "namespaces": st.lists(st.text(), max_size=2),
            "allowedServiceNames": st.lists(st.text(), max_size=2),
            "namespaceSelector": st.dictionaries(
                st.sampled_from(["matchLabels", "matchExpressions"]), json_values
            ),
        }
    )
    return st.fixed_dictionaries({"metadata": json_values, "spec": spec}) | json_values


def check(findings: list[Finding]) -> None:
    assert isinstance(findings, list)
    for finding in findings:
        assert phrase(finding).isprintable()
    assert message_for_denial(findings).isprintable()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pki=pkis(),
    namespace=st.text(),
    policy_list=st.lists(policies(), max_size=3),
    other=st.lists(pkis(), max_size=2),
    labels=st.none() | st.dictionaries(st.text(), st.text()),
)
def test_validate_pki_never_raises(
    pki: Any,
    namespace: str,
    policy_list: list[Any],
    other: list[Any],
    labels: dict[str, str] | None,
) -> None:
    secrets = {"x-tls": SecretInfo("x-tls", managed_by_pkiwarden=False, owner_pki=None)}
    context = Context(
        policies=policy_list, namespace_labels=labels, other_pkis=other, secrets=secrets
    )
    findings = validate_pki(pki, namespace, context)
    check(findings)
    assert findings == validate_pki(pki, namespace, context)


@settings(max_examples=300, deadline=None)
@given(policy=policies())
def test_validate_policy_never_raises(policy: Any) -> None:
    check(validate_policy(policy))


@settings(max_examples=100, deadline=None)
@given(pki=pkis())
def test_apply_defaults_never_raises(pki: Any) -> None:
    if isinstance(pki, dict):
        assert isinstance(apply_defaults(pki, "ns"), dict)
